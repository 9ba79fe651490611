"""Colour augmentation and normalisation of a training clip, on one planar float buffer.

The clip is converted once from uint8 (T, 3, H, W) to a planar float buffer (3, T, H, W) in
[0, 1]: every colour op then works in place on whole, contiguous channel planes (r, g, b each
(T, H, W)), and normalisation writes the final (T, 3, H, W) layout back. No pixel op loops over
frames in Python (only the per-frame random draws do, to keep their order) and none uses a
data-dependent select (``torch.where``, masked writes): with a random mask such a select cost
about 100x an add of the same size on the 2-core development CPU (8 ms against 0.08 ms for 400k
floats; branch mispredictions), so every choice is made with arithmetic.

Colour jitter keeps the reference's per-frame re-draw (torchvision ColorJitter called frame by
frame): each frame has its own brightness, contrast, saturation and hue factors and its own op
order. The four steps run over all frames at once (step s applies every frame's s-th op); frames
are sorted by the step at which they change hue, so that in each step the hue frames are one
contiguous block and the blend ops run on the others. The result equals applying torchvision's
ops frame by frame up to float rounding (|diff| <= 1e-5 on [0, 1] values, 2e-6 measured;
tests/unit/datasets/test_datasets_color.py compares with torchvision frame by frame), with the same random
draws in the same order.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

__all__ = ["JitterDraw", "draw_jitter", "to_planar", "from_planar", "jitter_planar_",
           "grayscale_planar_", "normalize_planar_"]

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3  # op ids in a frame's order
_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601, torchvision's rgb_to_grayscale weights
_HUE_CHANNEL_OFFSETS = (3.0, 1.0, -1.0)  # n - 2 for HSV -> RGB's n = 5, 3, 1 (R, G, B)


@dataclass
class JitterDraw:
    """One clip's jitter parameters: ``factors`` (T, 4) float32 per frame and op (brightness,
    contrast, saturation factors; hue shift in turns), ``orders`` (T, 4) each frame's op order."""
    factors: torch.Tensor
    orders: torch.Tensor

    def frame_order(self) -> torch.Tensor:
        """Frames sorted (stably) by the step at which they change hue (a Python sort: a few
        frames, where a tensor sort costs more to set up than to run)."""
        hue_step = [order.index(HUE) for order in self.orders.tolist()]
        return torch.tensor(sorted(range(len(hue_step)), key=hue_step.__getitem__))


def draw_jitter(num_frames: int, generator: torch.Generator, brightness=0.4, contrast=0.4,
                saturation=0.2, hue=0.1) -> JitterDraw:
    """Per-frame factors (uniform in [1 - b, 1 + b], ..., [-hue, hue]) then one op order per
    frame, drawn from ``generator`` in that order."""
    ranges = [(1 - brightness, 1 + brightness), (1 - contrast, 1 + contrast),
              (1 - saturation, 1 + saturation), (-hue, hue)]
    factors = torch.stack([lo + (hi - lo) * torch.rand(num_frames, generator=generator,
                                                       dtype=torch.float64)
                           for lo, hi in ranges], 1).to(torch.float32)
    orders = torch.stack([torch.randperm(4, generator=generator) for _ in range(num_frames)])
    return JitterDraw(factors, orders)


# ------------------------------------------------------------------------------------------------
# Scratch memory
# ------------------------------------------------------------------------------------------------
class _Scratch(threading.local):
    """Float32 buffers reused from one clip to the next in a thread (a loader worker): a fresh
    multi-megabyte tensor is new memory from the OS, and touching it page by page cost more than
    the arithmetic of the colour ops (measured: about 40% of the jitter's time)."""

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        numel = 1
        for size in shape:
            numel *= size
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[name] = torch.empty(numel, dtype=torch.float32)
        return buffer[:numel].view(shape)


_SCRATCH = _Scratch()


# ------------------------------------------------------------------------------------------------
# Layout
# ------------------------------------------------------------------------------------------------
def to_planar(clip: torch.Tensor, frame_order: torch.Tensor | None = None,
              reuse: bool = False) -> torch.Tensor:
    """uint8 (T, 3, H, W) (any memory layout, e.g. a flipped channels-last view) -> float32
    (3, T, H, W) in [0, 1], frames taken in ``frame_order`` when given. One pass.

    ``reuse``: write into this thread's scratch buffer, which the next ``reuse`` call overwrites
    (train_transform copies the result out with ``from_planar`` before that)."""
    t, c, h, w = clip.shape
    if frame_order is not None:  # gathered as (T, H, W, C): whole frames of a channels-last clip
        clip = clip.permute(0, 2, 3, 1).index_select(0, frame_order).permute(0, 3, 1, 2)
    if reuse:
        planar = _SCRATCH.get("planar", c, t, h, w)
    else:
        planar = torch.empty((c, t, h, w), dtype=torch.float32)
    return planar.copy_(clip.transpose(0, 1)).div_(255.0)


def from_planar(planar: torch.Tensor, frame_order: torch.Tensor | None = None) -> torch.Tensor:
    """(3, T, H, W) -> contiguous (T, 3, H, W), undoing ``frame_order``. One pass."""
    frames = planar.transpose(0, 1)
    if frame_order is None:
        return frames.contiguous()
    inverse = torch.empty_like(frame_order)
    inverse[frame_order] = torch.arange(len(frame_order))
    return frames.index_select(0, inverse)


# ------------------------------------------------------------------------------------------------
# Ops on planar clips (3, N, H, W), in place
# ------------------------------------------------------------------------------------------------
def _luma(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) luma of planar ``x``, computed as torchvision does (three products, two sums):
    bit-identical grayscale."""
    return _LUMA[0] * x[0] + _LUMA[1] * x[1] + _LUMA[2] * x[2]


def _mix_channels(x: torch.Tensor, weights, out: torch.Tensor) -> torch.Tensor:
    """``out`` (K, N, H, W) = weights (K, 3) applied to the channel planes of ``x``: one matrix
    product that reads the clip once (the luma inside the jitter; channel differences)."""
    matrix = torch.tensor(weights, dtype=x.dtype)
    torch.mm(matrix, x.reshape(3, -1), out=out.view(len(weights), -1))
    return out


def _blend_(x: torch.Tensor, factor: torch.Tensor, luma_weight: torch.Tensor,
            mean_weight: torch.Tensor) -> None:
    """Brightness, contrast or saturation, one op per frame: torchvision's blend f*x + (1 - f)*y
    clamped to [0, 1], against y = 0, the frame's mean luma or the pixel's luma, all frames as
    one blend: y*(1 - f) = luma*luma_weight + mean(luma)*mean_weight with per-frame weights
    (1 - f for the op's y, 0 for the others; all 0 and f = 1 leave a frame unchanged)."""
    n = x.shape[1]
    if bool(luma_weight.any()) or bool(mean_weight.any()):
        gray = _mix_channels(x, [_LUMA], _SCRATCH.get("gray", 1, *x.shape[1:]))[0]
        offset = gray.mean(dim=(1, 2)).mul_(mean_weight)
        gray.mul_(luma_weight.view(n, 1, 1)).add_(offset.view(n, 1, 1))
        torch.addcmul(gray, x, factor.view(1, n, 1, 1), out=x)
    else:
        x.mul_(factor.view(1, n, 1, 1))
    x.clamp_(0.0, 1.0)


# Rows: g - b, b - r, r - g, the hue sextant's numerator when R, G, B holds the maximum.
_CHANNEL_DIFFERENCES = [[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]]


def _shift_hue_(x: torch.Tensor, shift: torch.Tensor) -> None:
    """Rotate the HSV hue of every pixel by ``shift`` (N,) turns, keeping saturation and value.

    HSV -> RGB is f(n) = v - v*s*clamp(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6 for
    n = 5, 3, 1 (R, G, B). A hue rotation keeps v = max(R, G, B), min(R, G, B) and their
    difference, the chroma v*s; with u = k - 2 folded into [-3, 3], each channel is
    min + chroma * clamp(|u| - 1, 0, 1). The hue sextant 6h comes from the channel holding the
    maximum (ties go to R, then G, as torchvision), found with ceil(max - channel), which is 0
    exactly where the channel is the maximum (differences lie in [0, 1])."""
    n, h, w = x.shape[1:]
    work = _SCRATCH.get("hue", 12, n, h, w)
    maxc, minc, chroma, sextant, not_r, not_g = work[:6].unbind(0)
    which_max, diffs = work[6:9], work[9:12]  # one-hot R, G, B max; g - b, b - r, r - g
    r, g, b = x.unbind(0)
    torch.maximum(torch.maximum(g, b, out=maxc), r, out=maxc)
    torch.minimum(torch.minimum(g, b, out=minc), r, out=minc)
    torch.sub(maxc, minc, out=chroma)
    torch.sub(maxc, x[:2], out=work[4:6]).ceil_()  # not_r, not_g: 1 where R (G) is not the max
    b_max = torch.mul(not_r, not_g, out=which_max[2])
    torch.sub(not_r, b_max, out=which_max[1])
    torch.sub(1.0, not_r, out=which_max[0])
    # 6h = (numerator of the max's sextant) / chroma + 0, 2 or 4 (R, G, B max) + 6 * shift
    _mix_channels(x, _CHANNEL_DIFFERENCES, diffs).mul_(which_max)
    torch.sum(diffs, dim=0, out=sextant)
    sextant.div_(torch.clamp_min(chroma, torch.finfo(x.dtype).tiny, out=not_g))  # grey: 0
    sextant.add_(not_r.add_(b_max), alpha=2.0).add_(shift.view(-1, 1, 1), alpha=6.0)
    u = torch.add(sextant, _hue_offsets(x.dtype), out=diffs)
    u.sub_(torch.mul(u, 1.0 / 6.0, out=which_max).round_(), alpha=6.0)  # fold into [-3, 3]
    torch.addcmul(minc, u.abs_().sub_(1.0).clamp_(0.0, 1.0), chroma, out=x)


def _hue_offsets(dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(_HUE_CHANNEL_OFFSETS, dtype=dtype).view(3, 1, 1, 1)


def jitter_planar_(x: torch.Tensor, draw: JitterDraw) -> None:
    """Colour jitter of planar ``x`` (3, T, H, W) in place; its frames must already be in
    ``draw.frame_order()`` (``to_planar(clip, draw.frame_order())``)."""
    order = draw.frame_order()
    factors, orders = draw.factors[order], draw.orders[order]
    # Per frame and step: the blend factor and the weights of luma and mean luma in (1 - f) * y;
    # a frame changing hue in a step gets f = 1 and no weights there (its blend is the identity).
    step_factors = factors.gather(1, orders)
    hue = orders == HUE
    rest = 1.0 - step_factors
    luma_weights = (orders == SATURATION) * rest
    mean_weights = (orders == CONTRAST) * rest
    step_factors[hue] = 1.0
    bounds = [0] + torch.bincount(hue.nonzero()[:, 1], minlength=4).cumsum(0).tolist()
    for step in range(4):
        start, stop = bounds[step], bounds[step + 1]  # the frames that change hue in this step
        if stop - start < x.shape[1]:
            _blend_(x, step_factors[:, step], luma_weights[:, step], mean_weights[:, step])
        if stop > start:
            _shift_hue_(x[:, start:stop], factors[start:stop, HUE])


def grayscale_planar_(x: torch.Tensor) -> None:
    """Three identical luma channels, in place."""
    x.copy_(_luma(x).unsqueeze(0).expand_as(x))


def normalize_planar_(x: torch.Tensor, mean, std) -> None:
    """(x - mean) / std per channel plane, in place (float32 mean and std, as a tensor op would
    round them)."""
    for plane, m, s in zip(x, mean, std):
        plane.sub_(torch.tensor(m, dtype=x.dtype)).div_(torch.tensor(s, dtype=x.dtype))
