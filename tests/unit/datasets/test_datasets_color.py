"""The vectorised colour path (datasets/color.py) against torchvision applied frame by frame, and
the training transform against the plain per-op pipeline it replaced."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from datasets.color import (HUE, JitterDraw, draw_jitter, from_planar, grayscale_planar_,
                            jitter_planar_, normalize_planar_, normalized_frames, to_planar)
from datasets.transforms import (IMAGENET_MEAN, IMAGENET_STD, color_jitter_clip,
                                 random_resized_crop_box, resized_shape, train_transform)
from datasets.video_dataset import item_generator
from engine.config import get_cfg

# float32 rounding of a different but equivalent formula (hue without the HSV image, blends as
# one fused multiply-add, mean luma from the channel means): |diff| measured <= 2.4e-6 on [0, 1]
# values; the bound leaves room.
TOLERANCE = 1e-5
TORCHVISION_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _torchvision_jitter(clip: torch.Tensor, factors: torch.Tensor, orders: torch.Tensor):
    """The reference's per-frame ColorJitter: each frame's ops in its own order."""
    frames = []
    for frame, factor, order in zip(clip, factors, orders):
        for op in order.tolist():
            frame = TORCHVISION_OPS[op](frame, float(factor[op]))
        frames.append(frame)
    return torch.stack(frames)


def _test_clip(seed: int, t: int = 8, size: int = 24) -> torch.Tensor:
    """uint8-valued float clip in [0, 1] with grey pixels and channel ties (HSV's edge cases)."""
    x = torch.randint(0, 256, (t, 3, size, size), generator=_gen(seed)).float() / 255
    x[:, :, :3] = x[:, :1, :3]  # grey: chroma 0
    x[:, 1, 3:6] = x[:, 0, 3:6]  # R == G
    x[:, 2, 6:9] = x[:, 1, 6:9]  # G == B
    x[:, :, 9, :4] = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1)  # max and min ties at the ends
    return x


def test_draws_are_the_per_frame_factors_then_orders():
    draw = draw_jitter(5, _gen(7), 0.4, 0.3, 0.2, 0.1)
    g = _gen(7)
    expected = [lo + (hi - lo) * torch.rand(5, generator=g, dtype=torch.float64)
                for lo, hi in [(0.6, 1.4), (0.7, 1.3), (0.8, 1.2), (-0.1, 0.1)]]
    assert torch.equal(draw.factors, torch.stack(expected, 1).float())
    assert torch.equal(draw.orders, torch.stack([torch.randperm(4, generator=g)
                                                 for _ in range(5)]))


@pytest.mark.parametrize("seed", range(12))
def test_jitter_equals_torchvision_frame_by_frame(seed):
    clip = _test_clip(seed)
    draw = draw_jitter(clip.shape[0], _gen(seed))
    expected = _torchvision_jitter(clip, draw.factors, draw.orders)
    got = color_jitter_clip(clip, _gen(seed))
    assert got.shape == clip.shape and got.dtype == clip.dtype
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("hue", [0.5, 0.25])
def test_large_hue_shifts_wrap_around(hue):
    clip = _test_clip(100)
    draw = draw_jitter(clip.shape[0], _gen(3), 0.0, 0.0, 0.0, hue)
    expected = _torchvision_jitter(clip, draw.factors, draw.orders)
    got = color_jitter_clip(clip, _gen(3), 0.0, 0.0, 0.0, hue)
    assert (got - expected).abs().max().item() <= TOLERANCE


def test_planar_jitter_in_frame_order_round_trip():
    clip = (_test_clip(4) * 255).round().to(torch.uint8)
    draw = draw_jitter(8, _gen(4))
    order = draw.frame_order()
    hue_steps = (draw.orders[order] == HUE).nonzero()[:, 1]
    assert torch.equal(hue_steps, hue_steps.sort().values)  # hue frames are contiguous per step
    planar = to_planar(clip, order)
    assert planar.shape == (3, 8, 24, 24) and planar.is_contiguous()
    assert torch.equal(from_planar(planar, order), clip.float() / 255)
    jitter_planar_(planar, draw)
    expected = _torchvision_jitter(clip.float() / 255, draw.factors, draw.orders)
    assert (from_planar(planar, order) - expected).abs().max().item() <= TOLERANCE


def _per_op_train_transform(frames, cfg, generator, mean, std):
    """The per-op pipeline train_transform replaced (no RandAugment / erasing): uint8 resize,
    crop, flip, then float ops one after the other on (T, 3, S, S)."""
    size, aug = cfg.DATA.INPUT_SIZE, cfg.AUG
    clip = frames.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    h, w = clip.shape[-2:]
    out = resized_shape(h, w, int(aug.TRAIN_RESIZE_SCALE * size), cfg.DATA.RESIZE_ROUNDING)
    clip = F.interpolate(clip, size=out, mode="bilinear", align_corners=False, antialias=False)
    top, left, ch, cw = random_resized_crop_box(*clip.shape[-2:], tuple(aug.SCALE),
                                                tuple(aug.RATIO), generator)
    clip = clip[..., top:top + ch, left:left + cw].contiguous(memory_format=torch.channels_last)
    clip = F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=False)
    uniform = lambda: float(torch.rand((), generator=generator, dtype=torch.float64))  # noqa
    flipped = aug.FLIP_RATIO > 0 and uniform() < aug.FLIP_RATIO
    x = (clip.flip(-1) if flipped else clip).contiguous().float().div_(255.0)
    if aug.COLOR_JITTER > 0 and uniform() < aug.COLOR_JITTER:
        draw = draw_jitter(x.shape[0], generator)
        x = _torchvision_jitter(x, draw.factors, draw.orders)
    if aug.GRAY_SCALE > 0 and uniform() < aug.GRAY_SCALE:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std, flipped


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_train_transform_equals_per_op_pipeline(jitter):
    """Same crops, flips, draws and pixels: bit-identical without jitter (every op is the same
    arithmetic), within the jitter tolerance (scaled by 1/std) with it."""
    cfg = get_cfg()
    cfg.DATA.INPUT_SIZE = 32
    cfg.AUG.COLOR_JITTER, cfg.AUG.GRAY_SCALE, cfg.AUG.FLIP_RATIO = jitter, 0.5, 0.5
    frames = torch.randint(0, 256, (6, 40, 70, 3), dtype=torch.uint8, generator=_gen(0))
    flips = set()
    for index in range(16):
        got, flipped = train_transform(frames, cfg, item_generator(0, 0, index), IMAGENET_MEAN,
                                       IMAGENET_STD)
        expected, expected_flip = _per_op_train_transform(
            frames, cfg, item_generator(0, 0, index), IMAGENET_MEAN, IMAGENET_STD)
        flips.add(flipped)
        assert flipped == expected_flip and got.shape == (6, 3, 32, 32) and got.is_contiguous()
        if jitter == 0:
            assert torch.equal(got, expected)
        else:
            assert (got - expected).abs().max().item() <= TOLERANCE / min(IMAGENET_STD)
    assert flips == {True, False}


def test_train_transform_scratch_buffer_does_not_leak_between_clips():
    cfg = get_cfg()
    cfg.DATA.INPUT_SIZE = 32
    cfg.AUG.COLOR_JITTER = 1.0
    frames = torch.randint(0, 256, (4, 40, 60, 3), dtype=torch.uint8, generator=_gen(1))
    first, _ = train_transform(frames, cfg, item_generator(0, 0, 1), IMAGENET_MEAN, IMAGENET_STD)
    kept = first.clone()
    train_transform(frames.flip(1), cfg, item_generator(0, 0, 2), IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(first, kept)


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("ordered", [False, True])
def test_normalized_frames_is_grayscale_normalize_from_planar_bit_for_bit(gray, ordered):
    clip = (_test_clip(5, t=6) * 255).round().to(torch.uint8)
    order = torch.tensor([4, 0, 5, 2, 1, 3]) if ordered else None
    planar = to_planar(clip, order)
    expected = planar.clone()
    if gray:
        grayscale_planar_(expected)
    normalize_planar_(expected, IMAGENET_MEAN, IMAGENET_STD)
    expected = from_planar(expected, order)
    got = normalized_frames(planar, IMAGENET_MEAN, IMAGENET_STD, order, gray)
    assert got.shape == (6, 3, 24, 24) and got.is_contiguous()
    assert torch.equal(got, expected)


@pytest.mark.parametrize("seed", range(4))
def test_chains_of_blends_without_clamps_run_as_one_pass_and_equal_torchvision(seed):
    """Factors at most 1 never clamp, so a frame's consecutive blends fuse into one affine pass
    (datasets/color.py _blend_run_); chains ending in a factor above 1 clamp once at the end."""
    g = _gen(seed)
    clip = _test_clip(seed, t=8, size=32)
    low = 0.6 + 0.39 * torch.rand(8, 4, generator=g)  # every blend factor below 1
    factors = low if seed % 2 == 0 else torch.where(torch.rand(8, 4, generator=g) < 0.3,
                                                    low + 0.7, low)
    factors[:, HUE] = 0.2 * torch.rand(8, generator=g) - 0.1
    orders = torch.stack([torch.randperm(4, generator=g) for _ in range(8)])
    draw = JitterDraw(factors, orders)
    expected = _torchvision_jitter(clip, factors, orders)
    order = draw.frame_order()
    planar = to_planar((clip * 255).round().to(torch.uint8), order)
    jitter_planar_(planar, draw)
    assert (from_planar(planar, order) - expected).abs().max().item() <= TOLERANCE
