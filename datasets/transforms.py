"""Clip transforms on whole uint8/float tensors (T, C, H, W): one set of parameters per clip.

The operations are generic; which of them a model's pipeline uses, and with what geometry, is
read from the config keys its model family fills (engine/config.py, docs/datasets.md):

* train: [short-side resize to int(AUG.TRAIN_RESIZE_SCALE * size)] -> [RandAugment, when
  AUG.RANDAUG_POSITION before_crop] -> random resized crop to size -> [RandAugment, after_crop]
  -> horizontal flip (+ label swap) -> colour jitter -> grayscale -> normalise -> [erasing];
* test: short-side resize (DATA.RESIZE_ROUNDING) to int(TEST.RESIZE_SCALE * size) for one centre
  crop, to size for three crops along the long side (TEST.THREE_CROP layout).

Every random draw comes from a ``torch.Generator`` owned by the item, so augmentation is a
function of (seed, epoch, index) and not of the worker or rank.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN  # the default when DATA.MEAN is empty
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD

from .color import (draw_jitter, from_planar, grayscale_planar_, jitter_planar_,
                    normalize_planar_, normalized_frames, to_planar)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_ROUNDINGS", "THREE_CROP_LAYOUTS",
           "RANDAUG_POSITIONS", "RANDAUG_INTERPOLATIONS", "resized_shape", "resize_short_side",
           "random_resized_crop_box", "center_crop", "three_crop_offsets", "three_crops",
           "eval_short_side", "eval_crop_boxes", "color_jitter_clip", "grayscale_clip",
           "normalize_clip", "train_transform", "eval_views", "rand_augment_clip",
           "random_erase_clip"]

# How the long side is rounded when the short side is resized (DATA.RESIZE_ROUNDING):
# half_up: mmcv.rescale_size, int(side * (short / min(h, w)) + 0.5) (Video-FocalNets' Resize);
# floor: side * short // min(h, w) (Vita-CLIP's test resize).
RESIZE_ROUNDINGS = ("half_up", "floor")
# Three crops along the long side (TEST.THREE_CROP), as (first, second, third) offsets with
# margin m = long side - crop size:
# mmaction: left, right, middle at 0, 2 * (m // 2), m // 2 (Video-FocalNets' ThreeCrop: when m is
#           odd the "right" crop stops one pixel short of the edge);
# edge:     left, right, middle at 0, m, m // 2 (the same order, right crop flush with the edge);
# slowfast: left, middle, right at 0, m // 2, m (Vita-CLIP's spatial crops).
THREE_CROP_LAYOUTS = ("mmaction", "edge", "slowfast")
# Where RandAugment runs in training (AUG.RANDAUG_POSITION): after_crop, on the size x size crop;
# before_crop, on the whole (resized) frame, before the random resized crop (Vita-CLIP).
RANDAUG_POSITIONS = ("after_crop", "before_crop")
# Resampling of RandAugment's geometric ops (AUG.RANDAUG_INTERPOLATION): random picks bilinear or
# bicubic per clip (timm's default); bicubic / bilinear fix it (Vita-CLIP: bicubic).
RANDAUG_INTERPOLATIONS = ("random", "bicubic", "bilinear")


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (T, C, H, W), align_corners False, no antialias (as cv2/mmcv)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    if clip.dtype == torch.uint8:  # the fast uint8 kernel wants channels-last memory
        clip = clip.contiguous(memory_format=torch.channels_last)
    return F.interpolate(clip, size=size, mode="bilinear", align_corners=False, antialias=False)


def resized_shape(height: int, width: int, short: int, rounding: str = "half_up"
                  ) -> tuple[int, int]:
    """(H', W') after scaling the shorter side to ``short`` with DATA.RESIZE_ROUNDING
    ``rounding`` (see RESIZE_ROUNDINGS; each formula is its official code's, operation for
    operation, so that float rounding agrees too)."""
    if rounding == "half_up":
        factor = short / min(height, width)
        return int(height * factor + 0.5), int(width * factor + 0.5)
    if rounding == "floor":
        if height < width:
            return short, width * short // height
        return height * short // width, short
    raise ValueError(f"unknown resize rounding {rounding!r}; use one of "
                     f"{', '.join(RESIZE_ROUNDINGS)}")


def resize_short_side(clip: torch.Tensor, short: int, rounding: str = "half_up") -> torch.Tensor:
    """Scale (T, C, H, W) so that the shorter side is ``short`` (aspect kept, long side rounded
    by ``rounding``), bilinear without antialiasing."""
    h, w = clip.shape[-2:]
    new_h, new_w = resized_shape(h, w, short, rounding)
    return _resize(clip, (max(1, new_h), max(1, new_w)))


def random_resized_crop_box(height: int, width: int, scale, ratio,
                            generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w): Inception-style area/log-aspect draw, 10 tries, then a centre fallback."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(generator, scale[0], scale[1])
        aspect = math.exp(_uniform(generator, *log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    h, w = clip.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return clip[..., top:top + size, left:left + size]


def three_crop_offsets(height: int, width: int, size: int, layout: str = "mmaction"
                       ) -> list[tuple[int, int]]:
    """(top, left) of the three size x size crops along the long side, in TEST.THREE_CROP
    ``layout``'s order (THREE_CROP_LAYOUTS). Landscape and square frames are cut along the width
    (portrait ones along the height), centred across the other side."""
    if layout not in THREE_CROP_LAYOUTS:
        raise ValueError(f"unknown three-crop layout {layout!r}; use one of "
                         f"{', '.join(THREE_CROP_LAYOUTS)}")
    along_width = width >= height
    margin = (width if along_width else height) - size
    step = margin // 2
    starts = {"mmaction": (0, 2 * step, step), "edge": (0, margin, step),
              "slowfast": (0, step, margin)}[layout]
    if along_width:
        top = max((height - size) // 2, 0)
        return [(top, start) for start in starts]
    left = max((width - size) // 2, 0)
    return [(start, left) for start in starts]


def three_crops(clip: torch.Tensor, size: int, layout: str = "mmaction") -> list[torch.Tensor]:
    """The three size x size crops of ``three_crop_offsets`` (same order)."""
    h, w = clip.shape[-2:]
    return [clip[..., t:t + size, l:l + size] for t, l in three_crop_offsets(h, w, size, layout)]


# ------------------------------------------------------------------------------------------------
# Colour (on (T, C, H, W) float clips; train_transform uses the planar ops of datasets/color.py)
# ------------------------------------------------------------------------------------------------
def color_jitter_clip(clip: torch.Tensor, generator: torch.Generator, brightness=0.4,
                      contrast=0.4, saturation=0.2, hue=0.1) -> torch.Tensor:
    """torchvision ColorJitter semantics with the reference's per-frame re-draw: each frame gets
    its own factors and op order, all drawn from the item's generator (datasets/color.py).
    ``clip`` float (T, 3, H, W) in [0, 1]; returns a new clip."""
    draw = draw_jitter(clip.shape[0], generator, brightness, contrast, saturation, hue)
    order = draw.frame_order()
    planar = clip.index_select(0, order).transpose(0, 1).to(torch.float32).contiguous()
    jitter_planar_(planar, draw)
    return from_planar(planar, order).to(clip.dtype)


def grayscale_clip(clip: torch.Tensor) -> torch.Tensor:
    """Three identical luma channels (float clip in [0, 1])."""
    planar = clip.transpose(0, 1).contiguous()
    grayscale_planar_(planar)
    return from_planar(planar)


def normalize_clip(clip: torch.Tensor, mean, std) -> torch.Tensor:
    """float [0, 1] (T, C, H, W) -> (x - mean) / std."""
    planar = clip.transpose(0, 1).contiguous()
    normalize_planar_(planar, mean, std)
    return from_planar(planar)


# ------------------------------------------------------------------------------------------------
# timm RandAugment / RandomErasing with one draw per clip
# ------------------------------------------------------------------------------------------------
@contextmanager
def _seeded_global_rngs(seed: int):
    """Run code that uses python `random` / numpy / torch (CPU) global RNGs under a fixed seed,
    then restore the caller's states (timm's transforms draw from the global generators).

    Only the CPU generator is seeded: ``torch.manual_seed`` also queues a seed for every lazily
    initialised accelerator backend and records a stack trace each time (about 0.9 ms per call
    here: 7 of the 32 ms CPU of an 8-frame 224 RandAugment clip), and no transform here draws from
    a device generator."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def rand_augment_clip(clip: torch.Tensor, config_str: str, generator: torch.Generator,
                      interpolation: str = "random",
                      _cache: dict = {}) -> torch.Tensor:  # noqa: B006 (per-process cache)
    """timm RandAugment (``rand-m7-n4-mstd0.5-inc1`` style) with the same ops, magnitudes and coin
    flips on every frame: the global RNGs are reset to one per-clip seed before each frame.
    ``clip`` uint8 (T, 3, H, W); grey fill, translate const 45% of the short side (as SlowFast);
    ``interpolation`` one of RANDAUG_INTERPOLATIONS for the geometric ops."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform
    if interpolation not in RANDAUG_INTERPOLATIONS:
        raise ValueError(f"unknown RandAugment interpolation {interpolation!r}; use one of "
                         f"{', '.join(RANDAUG_INTERPOLATIONS)}")
    h, w = clip.shape[-2:]
    key = (config_str, int(0.45 * min(h, w)), interpolation)
    if key not in _cache:
        hparams = dict(translate_const=key[1], img_mean=(128, 128, 128))
        if interpolation != "random":
            hparams["interpolation"] = {"bicubic": Image.BICUBIC,
                                        "bilinear": Image.BILINEAR}[interpolation]
        _cache[key] = rand_augment_transform(config_str, hparams)
    transform = _cache[key]
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    frames = clip.permute(0, 2, 3, 1).contiguous().numpy()
    out = []
    for frame in frames:
        with _seeded_global_rngs(seed):
            out.append(np.asarray(transform(Image.fromarray(frame))))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def random_erase_clip(clip: torch.Tensor, probability: float, mode: str, count: int,
                      generator: torch.Generator) -> torch.Tensor:
    """timm RandomErasing on a normalised clip with one box (or ``count`` boxes) for all frames.

    The clip is viewed as one image with T*C channels, so timm erases the same region of every
    frame; per-pixel noise values still differ per frame and channel."""
    from timm.data.random_erasing import RandomErasing
    if probability <= 0:
        return clip
    t, c, h, w = clip.shape
    eraser = RandomErasing(probability=probability, mode=mode, max_count=count, device="cpu")
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    with _seeded_global_rngs(seed):
        flat = eraser(clip.reshape(t * c, h, w).clone())
    return flat.reshape(t, c, h, w)


# ------------------------------------------------------------------------------------------------
# Pipelines
# ------------------------------------------------------------------------------------------------
def train_transform(frames: torch.Tensor, cfg, generator: torch.Generator, mean, std,
                    ) -> tuple[torch.Tensor, bool]:
    """uint8 (T, H, W, 3) -> normalised float (T, 3, S, S) and whether it was flipped.

    Geometry (resize, crop, RandAugment, flip) runs on uint8 channels-last frames; one conversion
    writes the flipped crop into a planar float buffer, colour jitter works in place on it
    (datasets/color.py), and grayscale and normalisation write (T, 3, S, S) from it in one pass."""
    size = cfg.DATA.INPUT_SIZE
    aug = cfg.AUG
    clip = frames.permute(0, 3, 1, 2)  # channels-last memory, what the uint8 resize wants
    if aug.TRAIN_RESIZE_SCALE > 0:
        clip = resize_short_side(clip, int(aug.TRAIN_RESIZE_SCALE * size), cfg.DATA.RESIZE_ROUNDING)
    randaug_first = aug.AUTO_AUGMENT and aug.RANDAUG_POSITION == "before_crop"
    if randaug_first:
        clip = rand_augment_clip(clip.contiguous(), aug.AUTO_AUGMENT, generator,
                                 aug.RANDAUG_INTERPOLATION)
    top, left, h, w = random_resized_crop_box(clip.shape[-2], clip.shape[-1], tuple(aug.SCALE),
                                              tuple(aug.RATIO), generator)
    clip = _resize(clip[..., top:top + h, left:left + w], (size, size))
    if aug.AUTO_AUGMENT and not randaug_first:
        clip = rand_augment_clip(clip.contiguous(), aug.AUTO_AUGMENT, generator,
                                 aug.RANDAUG_INTERPOLATION)
    flipped = aug.FLIP_RATIO > 0 and _uniform(generator) < aug.FLIP_RATIO
    if flipped:
        clip = clip.flip(-1)
    jitter = None
    if aug.COLOR_JITTER > 0 and _uniform(generator) < aug.COLOR_JITTER:
        jitter = draw_jitter(clip.shape[0], generator)
    order = jitter.frame_order() if jitter is not None else None
    x = to_planar(clip, order, reuse=True)  # the one conversion to float: (3, T, S, S)
    if jitter is not None:
        jitter_planar_(x, jitter)
    gray = aug.GRAY_SCALE > 0 and _uniform(generator) < aug.GRAY_SCALE
    x = normalized_frames(x, mean, std, order, gray)  # grayscale, normalise, (T, 3, S, S)
    if aug.REPROB > 0:
        x = random_erase_clip(x, aug.REPROB, aug.REMODE, aug.RECOUNT, generator)
    return x.contiguous(), flipped


def eval_short_side(cfg) -> int:
    """The short side test frames are resized to: DATA.INPUT_SIZE for three crops (they span the
    short side), int(TEST.RESIZE_SCALE * DATA.INPUT_SIZE) for one centre crop."""
    size = cfg.DATA.INPUT_SIZE
    return size if cfg.TEST.NUM_CROP == 3 else int(cfg.TEST.RESIZE_SCALE * size)


def eval_crop_boxes(height: int, width: int, cfg) -> tuple[tuple[int, int], list]:
    """Test geometry of a ``height`` x ``width`` video: the resized (H', W') and each crop's
    ``(x0, y0, x1, y1)`` box in it (x1, y1 exclusive), in crop order."""
    size = cfg.DATA.INPUT_SIZE
    new_h, new_w = resized_shape(height, width, eval_short_side(cfg), cfg.DATA.RESIZE_ROUNDING)
    if cfg.TEST.NUM_CROP == 3:
        offsets = three_crop_offsets(new_h, new_w, size, cfg.TEST.THREE_CROP)
    else:
        offsets = [(max((new_h - size) // 2, 0), max((new_w - size) // 2, 0))]
    return (new_h, new_w), [(left, top, left + size, top + size) for top, left in offsets]


def eval_views(clips: list[torch.Tensor], cfg, mean, std) -> torch.Tensor:
    """uint8 clips [(T, H, W, 3)] (one per temporal view) -> (V, T, 3, S, S), crop-major order
    (view = crop * clips + clip), with the geometry of ``eval_crop_boxes``."""
    size = cfg.DATA.INPUT_SIZE
    short = eval_short_side(cfg)
    resized = [resize_short_side(c.permute(0, 3, 1, 2), short, cfg.DATA.RESIZE_ROUNDING)
               for c in clips]
    views = []
    for crop_index in range(cfg.TEST.NUM_CROP):
        for clip in resized:  # crop-major: for each crop, every clip
            crop = (three_crops(clip, size, cfg.TEST.THREE_CROP)[crop_index]
                    if cfg.TEST.NUM_CROP == 3 else center_crop(clip, size))
            views.append(normalize_clip(crop.float().div_(255.0), mean, std))
    return torch.stack(views).contiguous()
