"""The video Dataset: (path, label) samples -> decoded, sampled, augmented clips.

Train item: ``(video, label)``, video float32 (T, C, H, W). Val/test item: ``(views, label, index)``,
views float32 (V, T, C, H, W) with V = TEST.NUM_CLIP x TEST.NUM_CROP in crop-major order, and the
item's dataset index.

Randomness of an item is a function of (cfg.SEED, epoch, index) only: a fresh generator seeded
from those three numbers drives sampling and augmentation, so any split of the indices over
workers or ranks produces the same clips.

A video that cannot be decoded is logged once (path and reason) and remembered in an array
shared by all worker processes. In training it is replaced by a deterministically chosen other
sample. In evaluation it is never replaced: under TEST.BAD_VIDEO_POLICY exclude (default) the
item keeps its index and its own label with all-zero views, and ``bad_indices()`` tells the
evaluator to leave it out of the metrics; under ``fail`` loading stops at the first one. When
more than DATA.MAX_BAD_FRACTION of the dataset has failed, loading stops with an error.
"""
from __future__ import annotations

import logging
import multiprocessing as mp

import numpy as np
import torch
from torch.utils.data import Dataset

from .decoding import VideoDecodeError, load_frames
from .sampling import multi_view_indices, sample_dense_indices, sample_segment_indices
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_views, train_transform

__all__ = ["VideoDataset", "item_generator", "normalization", "eval_frame_indices",
           "eval_clip_views"]

logger = logging.getLogger(__name__)

_MAX_REPLACEMENTS = 50


def normalization(cfg) -> tuple[tuple, tuple]:
    """(mean, std) on 0..1 RGB: DATA.MEAN / DATA.STD, each falling back to ImageNet's when empty.

    ``engine.config.load_cfg`` fills empty values from the model family (CLIP statistics for
    Vita-CLIP), so the ImageNet fallback only applies to a bare ``get_cfg()`` tree."""
    mean = tuple(cfg.DATA.MEAN) if len(cfg.DATA.MEAN) else IMAGENET_MEAN
    std = tuple(cfg.DATA.STD) if len(cfg.DATA.STD) else IMAGENET_STD
    return mean, std


def eval_frame_indices(cfg, num_frames: int) -> np.ndarray:
    """Frame indices of the TEST.NUM_CLIP evaluation clips of a video of ``num_frames`` frames,
    clip after clip (DATA.NUM_FRAMES each). A span of a longer video is sampled by offsetting
    the indices of a video as long as the span."""
    # One segment-sampled test clip spans AUG.FRAME_INTERVAL as in the official single-clip val
    # pipeline; several clips are drawn with span 1 (datasets/sampling.py).
    views = multi_view_indices(num_frames, cfg.DATA.NUM_FRAMES, cfg.TEST.NUM_CLIP,
                               cfg.DATA.SAMPLING, interval=cfg.DATA.FRAME_INTERVAL,
                               ori_len=cfg.AUG.FRAME_INTERVAL)
    return np.concatenate(views)


def eval_clip_views(frames: torch.Tensor, cfg, mean=None, std=None) -> torch.Tensor:
    """uint8 frames (TEST.NUM_CLIP * DATA.NUM_FRAMES, H, W, 3) at ``eval_frame_indices`` ->
    normalised views (TEST.NUM_CLIP * TEST.NUM_CROP, T, 3, S, S), crop-major: exactly what the
    val/test Dataset gives for the same frames. ``mean``/``std`` default to the config's."""
    if mean is None or std is None:
        mean, std = normalization(cfg)
    return eval_views(list(frames.split(cfg.DATA.NUM_FRAMES)), cfg, mean, std)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The item's private generator: a hash of (seed, epoch, index), independent of worker/rank."""
    state = np.random.SeedSequence([abs(int(seed)), int(epoch), int(index)]).generate_state(
        2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


class VideoDataset(Dataset):
    """Clips from a list of (path, label) samples, decoded with DATA.DECODER."""

    def __init__(self, samples: list[tuple[str, int]], cfg, split: str,
                 classes: list[str] | None = None, flip_label_map: dict[int, int] | None = None):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if not samples:
            raise ValueError(f"no samples for split {split!r}")
        self.samples = list(samples)
        self.classes = list(classes) if classes is not None else None
        self.split = split
        self.cfg = cfg
        self.train = split == "train"
        self.num_frames = cfg.DATA.NUM_FRAMES
        self.decoder = cfg.DATA.DECODER
        self.mean, self.std = normalization(cfg)
        self.flip_label_map = dict(flip_label_map or {})
        self.seed = int(cfg.SEED)
        self.epoch = 0
        # Shared with (forked or spawned) DataLoader workers: one flag per sample.
        self._bad_flags = mp.Array("b", len(self.samples), lock=False)
        self._logged: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def bad_video_count(self) -> int:
        """Distinct videos that failed to decode so far, across all worker processes."""
        return int(np.frombuffer(self._bad_flags, dtype=np.int8).sum())

    def bad_indices(self) -> list[int]:
        """Indices of the videos that failed to decode so far, across all worker processes."""
        return np.flatnonzero(np.frombuffer(self._bad_flags, dtype=np.int8)).tolist()

    def _placeholder_views(self) -> torch.Tensor:
        """All-zero views of an unreadable evaluation video, shaped like a readable one's."""
        views = self.cfg.TEST.NUM_CLIP * self.cfg.TEST.NUM_CROP
        size = self.cfg.DATA.INPUT_SIZE
        return torch.zeros(views, self.num_frames, 3, size, size)

    # ----------------------------------------------------------------------------------------
    def _frame_indices(self, n: int, generator: torch.Generator | None) -> np.ndarray:
        cfg = self.cfg
        if self.train:
            if cfg.DATA.SAMPLING == "dense":
                return sample_dense_indices(n, self.num_frames, cfg.DATA.FRAME_INTERVAL, generator)
            return sample_segment_indices(n, self.num_frames, cfg.AUG.FRAME_INTERVAL, generator)
        return eval_frame_indices(cfg, n)

    def _load(self, index: int, generator: torch.Generator | None):
        path, label = self.samples[index]
        frames = torch.from_numpy(load_frames(
            path, lambda n: self._frame_indices(n, generator), self.decoder))
        if self.train:
            video, flipped = train_transform(frames, self.cfg, generator, self.mean, self.std)
            if flipped:
                label = self.flip_label_map.get(label, label)
            return video, int(label)
        return eval_clip_views(frames, self.cfg, self.mean, self.std), int(label)

    def _mark_bad(self, index: int, reason: str) -> None:
        if not self._bad_flags[index]:
            self._bad_flags[index] = 1
            if index not in self._logged:
                self._logged.add(index)
                logger.warning("skipping unreadable video: %s; %s", reason,
                               "replaced by another sample" if self.train else
                               "left out of the metrics (TEST.BAD_VIDEO_POLICY exclude)")
        bad = self.bad_video_count()
        limit = self.cfg.DATA.MAX_BAD_FRACTION * len(self.samples)
        if bad > limit:
            raise VideoDecodeError(
                f"{bad} of {len(self.samples)} videos failed to decode, more than "
                f"DATA.MAX_BAD_FRACTION={self.cfg.DATA.MAX_BAD_FRACTION} of the dataset "
                f"(last: {reason}). Check DATA.ROOT and the annotation "
                f"paths, or run `python tools/prepare_dataset.py --validate LIST --root ROOT`.")

    def _replacement(self, index: int, attempt: int) -> int:
        """Deterministic stand-in for a bad sample: a hash of (seed, epoch, index, attempt)."""
        state = np.random.SeedSequence([abs(self.seed), self.epoch, index, attempt, 7]
                                       ).generate_state(1)
        return int(state[0]) % len(self.samples)

    def _eval_item(self, index: int):
        """An evaluation item: never another video's views or label (see the module doc)."""
        label = int(self.samples[index][1])
        if not self._bad_flags[index]:
            try:
                return (*self._load(index, None), index)
            except VideoDecodeError as err:
                if getattr(self.cfg.TEST, "BAD_VIDEO_POLICY", "exclude") == "fail":
                    raise VideoDecodeError(f"{err} (TEST.BAD_VIDEO_POLICY fail; set it to "
                                           f"exclude to leave unreadable videos out of the "
                                           f"metrics)") from None
                self._mark_bad(index, str(err))
        return self._placeholder_views(), label, index

    def __getitem__(self, index: int):
        index = int(index)
        if not self.train:
            return self._eval_item(index)
        candidate = index
        for attempt in range(_MAX_REPLACEMENTS + 1):
            if not self._bad_flags[candidate]:
                # The replacement keeps the requested index's random stream (seed, epoch, index).
                generator = item_generator(self.seed, self.epoch, index)
                try:
                    return self._load(candidate, generator)
                except VideoDecodeError as err:
                    self._mark_bad(candidate, str(err))
            candidate = self._replacement(index, attempt)
        raise VideoDecodeError(f"no decodable video found after {_MAX_REPLACEMENTS} replacements "
                               f"for sample {index} ({self.samples[index][0]})")
