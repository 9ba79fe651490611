"""build_dataset / build_loader / build_mixup: config -> data objects.

Loader contract (the engine relies on it):
* train batches are ``(video, label)``: video (B, T, C, H, W) float32, label (B,) int64. The sampler
  is a DistributedSampler (shuffle, seed=cfg.SEED, drop_last) on every world size, 1 included, so a
  1-process run with batch 2b and a 2-process run with batch b see the same global batches.
* val/test batches are ``(views, label, index)``: views (B, V, T, C, H, W), index (B,) int64 the
  dataset index of each video. Rank r takes indices r, r + W, r + 2W, ... with no padding and no
  dropping, so across ranks every sample is seen exactly once.
* ``loader.sampler.set_epoch(epoch)`` also sets the dataset's epoch; workers are not persistent,
  so each epoch's workers start from the updated dataset.
"""
from __future__ import annotations

import logging

import torch
from timm.data import Mixup
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from .annotations import AnnotationError, numbered_lines
from .layouts import load_annotations
from .video_dataset import VideoDataset

__all__ = ["build_dataset", "build_loader", "build_mixup", "flip_label_map", "TrainSampler",
           "ShardSampler", "VideoMixup"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Label swaps for horizontal flips
# ------------------------------------------------------------------------------------------------
def flip_label_map(spec: str, classes: list[str] | None) -> dict[int, int]:
    """AUG.FLIP_LABEL_MAP: "" none; "auto" swap class names differing only by left<->right (and
    clockwise<->anticlockwise); else a file of ``a,b`` label-id pairs (both directions)."""
    if not spec:
        return {}
    if spec == "auto":
        if not classes:
            raise AnnotationError("AUG.FLIP_LABEL_MAP auto needs class names (DATA.LABEL_LIST)")
        lookup = {c.lower(): i for i, c in enumerate(classes)}
        swaps = [("left", "right"), ("anticlockwise", "clockwise"),
                 ("counterclockwise", "clockwise")]
        mapping = {}
        for i, name in enumerate(classes):
            words = name.lower().split()
            for a, b in swaps:
                table = {a: b, b: a}
                swapped = " ".join(table.get(w, w) for w in words)
                if swapped != name.lower() and swapped in lookup:
                    mapping[i] = lookup[swapped]
        return mapping
    mapping = {}
    for number, line in numbered_lines(spec):
        parts = line.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise AnnotationError(f"{spec}: line {number}: expected `a,b` label ids, got {line!r}")
        a, b = int(parts[0]), int(parts[1])
        mapping[a], mapping[b] = b, a
    return mapping


# ------------------------------------------------------------------------------------------------
# Dataset and loader
# ------------------------------------------------------------------------------------------------
def build_dataset(cfg, split: str) -> VideoDataset:
    """The Dataset for ``split`` (train | val | test) of DATA.DATASET."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    samples, classes = load_annotations(cfg, split)
    num_classes = cfg.MODEL.NUM_CLASSES
    top = max(label for _, label in samples)
    if num_classes > 0 and top >= num_classes:
        raise AnnotationError(f"{split} annotations hold label {top} but MODEL.NUM_CLASSES is "
                              f"{num_classes}; set MODEL.NUM_CLASSES to the number of classes"
                              f"{f' ({len(classes)})' if classes else ''}")
    mapping = flip_label_map(cfg.AUG.FLIP_LABEL_MAP, classes) if split == "train" else {}
    dataset = VideoDataset(samples, cfg, split, classes, mapping)
    logger.info("%s %s: %d videos, %s classes", cfg.DATA.DATASET, split, len(dataset),
                len(classes) if classes else "?")
    return dataset


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class TrainSampler(DistributedSampler):
    """DistributedSampler whose set_epoch also reaches the dataset (augmentation seeds)."""

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


class ShardSampler(Sampler):
    """Evaluation: indices rank, rank + world, ... in order; no padding, no dropping."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0):
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def build_loader(cfg, split: str, dataset=None) -> DataLoader:
    """DataLoader for ``split`` (see the module docstring for batch layouts and sampling)."""
    dataset = dataset if dataset is not None else build_dataset(cfg, split)
    world, rank = _world()
    train = split == "train"
    if train:
        sampler = TrainSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                               seed=int(cfg.SEED), drop_last=True)
        batch_size = cfg.DATA.BATCH_SIZE
    else:
        sampler = ShardSampler(dataset, world, rank)
        batch_size = cfg.TEST.BATCH_SIZE
    workers = cfg.DATA.NUM_WORKERS
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=bool(cfg.DATA.PIN_MEMORY) and torch.cuda.is_available(),
                      drop_last=train, persistent_workers=False,
                      prefetch_factor=2 if workers > 0 else None)


# ------------------------------------------------------------------------------------------------
# Mixup / CutMix
# ------------------------------------------------------------------------------------------------
class VideoMixup(Mixup):
    """timm Mixup for (B, T, C, H, W) clips: frames are folded into channels so CutMix cuts the
    same box from every frame; 4-D input is passed through unchanged."""

    def __call__(self, x, target):
        if x.ndim == 5:
            b, t, c, h, w = x.shape
            flat, target = super().__call__(x.reshape(b, t * c, h, w), target)
            return flat.reshape(b, t, c, h, w), target
        return super().__call__(x, target)


def build_mixup(cfg):
    """timm Mixup (video-aware subclass) from AUG.*, or None when MIXUP and CUTMIX are both 0."""
    aug = cfg.AUG
    if aug.MIXUP <= 0 and aug.CUTMIX <= 0 and aug.CUTMIX_MINMAX is None:
        return None
    return VideoMixup(
        mixup_alpha=aug.MIXUP, cutmix_alpha=aug.CUTMIX,
        cutmix_minmax=list(aug.CUTMIX_MINMAX) if aug.CUTMIX_MINMAX else None,
        prob=aug.MIXUP_PROB, switch_prob=aug.MIXUP_SWITCH_PROB, mode=aug.MIXUP_MODE,
        label_smoothing=aug.LABEL_SMOOTH, num_classes=cfg.MODEL.NUM_CLASSES)

