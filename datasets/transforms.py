"""Clip transforms on whole uint8/float tensors (T, C, H, W): one set of parameters per clip.

Train (reference order): short-side resize to int(256/224 * size) -> random resized crop to size
-> [RandAugment] -> horizontal flip (+ label swap) -> colour jitter -> grayscale -> normalise ->
[random erasing]. Test: short-side resize then centre crop (1 crop) or three crops along the long
side. Every random draw comes from a ``torch.Generator`` owned by the item, so augmentation is a
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

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "resize_short_side",
           "random_resized_crop_box", "center_crop", "three_crops", "color_jitter_clip",
           "grayscale_clip", "normalize_clip", "train_transform", "eval_views",
           "rand_augment_clip", "random_erase_clip", "resize_size"]


def resize_size(input_size: int) -> int:
    """Short side before cropping: int(256 / 224 * input_size) (256 for 224)."""
    return int(256 / 224 * input_size)


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (T, C, H, W), align_corners False, no antialias (as cv2/mmcv)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    if clip.dtype == torch.uint8:  # the fast uint8 kernel wants channels-last memory
        clip = clip.contiguous(memory_format=torch.channels_last)
    return F.interpolate(clip, size=size, mode="bilinear", align_corners=False, antialias=False)


def resize_short_side(clip: torch.Tensor, short: int) -> torch.Tensor:
    """Scale so the shorter side is ``short`` (aspect kept; long side rounded)."""
    h, w = clip.shape[-2:]
    if h <= w:
        size = (short, max(1, int(round(w * short / h))))
    else:
        size = (max(1, int(round(h * short / w))), short)
    return _resize(clip, size)


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


def three_crops(clip: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Three size x size crops along the long side: (left, right, middle) for landscape frames,
    (top, bottom, middle) for portrait ones — the reference's ThreeCrop order."""
    h, w = clip.shape[-2:]
    if w >= h:
        top = max((h - size) // 2, 0)
        boxes = [(top, 0), (top, w - size), (top, (w - size) // 2)]
    else:
        left = max((w - size) // 2, 0)
        boxes = [(0, left), (h - size, left), ((h - size) // 2, left)]
    return [clip[..., t:t + size, l:l + size] for t, l in boxes]


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
                      _cache: dict = {}) -> torch.Tensor:  # noqa: B006 (per-process cache)
    """timm RandAugment (``rand-m7-n4-mstd0.5-inc1`` style) with the same ops, magnitudes and coin
    flips on every frame: the global RNGs are reset to one per-clip seed before each frame.
    ``clip`` uint8 (T, 3, H, W); grey fill, translate const 45% of the short side (as SlowFast)."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform
    h, w = clip.shape[-2:]
    key = (config_str, int(0.45 * min(h, w)))
    if key not in _cache:
        hparams = dict(translate_const=key[1], img_mean=(128, 128, 128))
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
    clip = resize_short_side(clip, resize_size(size))
    top, left, h, w = random_resized_crop_box(clip.shape[-2], clip.shape[-1], tuple(aug.SCALE),
                                              tuple(aug.RATIO), generator)
    clip = _resize(clip[..., top:top + h, left:left + w], (size, size))
    if aug.AUTO_AUGMENT:
        clip = rand_augment_clip(clip.contiguous(), aug.AUTO_AUGMENT, generator)
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


def eval_views(clips: list[torch.Tensor], cfg, mean, std) -> torch.Tensor:
    """uint8 clips [(T, H, W, 3)] (one per temporal view) -> (V, T, 3, S, S), crop-major order.

    1 crop: short side int(256/224*S), centre crop. 3 crops: short side S, three crops along the
    long side (the reference's two paths)."""
    size = cfg.DATA.INPUT_SIZE
    num_crop = cfg.TEST.NUM_CROP
    short = size if num_crop == 3 else resize_size(size)
    resized = [resize_short_side(c.permute(0, 3, 1, 2), short) for c in clips]
    views = []
    for crop_index in range(num_crop):
        for clip in resized:  # crop-major: for each crop, every clip
            crop = three_crops(clip, size)[crop_index] if num_crop == 3 else center_crop(clip, size)
            views.append(normalize_clip(crop.float().div_(255.0), mean, std))
    return torch.stack(views).contiguous()
