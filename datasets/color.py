"""Colour augmentation and normalisation of a training clip, on one planar float buffer.

The clip is converted once from uint8 (T, 3, H, W) to a planar float buffer (3, T, H, W) in
[0, 1]: every colour op then works in place on contiguous channel planes (r, g, b each
(T, H, W), or one frame's (H, W)), and normalisation writes the final (T, 3, H, W) layout back.
No pixel op uses a data-dependent select (``torch.where``, masked writes): with a random mask
such a select cost about 100x an add of the same size on the 2-core development CPU (8 ms
against 0.08 ms for 400k floats; branch mispredictions), so every choice is made with
arithmetic. Each torch call also costs several microseconds on that CPU, so the ops are few and
whole-plane.

Colour jitter keeps the reference's per-frame re-draw (torchvision ColorJitter called frame by
frame): each frame has its own brightness, contrast, saturation and hue factors and its own op
order. Frames are sorted by the step at which they change hue, so that in each of the four steps
the hue frames are one contiguous block, shifted together; around it every frame blends on its
own (brightness, contrast, saturation), consecutive blends whose factors are at most 1 fused
into one pass (no clamp acts there), a clamp only after a factor above 1. The result equals
applying torchvision's ops frame by frame up to float rounding (|diff| <= 1e-5 on [0, 1] values,
2.4e-6 measured; tests/unit/datasets/test_datasets_color.py compares with torchvision frame by
frame), with the same random draws in the same order.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

__all__ = ["JitterDraw", "draw_jitter", "to_planar", "from_planar", "jitter_planar_",
           "grayscale_planar_", "normalize_planar_", "normalized_frames"]

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3  # op ids in a frame's order
_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601, torchvision's rgb_to_grayscale weights


@dataclass
class JitterDraw:
    """One clip's jitter parameters: ``factors`` (T, 4) float32 per frame and op (brightness,
    contrast, saturation factors; hue shift in turns), ``orders`` (T, 4) each frame's op order."""
    factors: torch.Tensor
    orders: torch.Tensor
    _order: list = field(default=None, init=False, repr=False, compare=False)

    def frame_order(self) -> torch.Tensor:
        """Frames sorted (stably) by the step at which they change hue (a Python sort: a few
        frames, where a tensor sort costs more to set up than to run)."""
        return torch.tensor(self._frame_order())

    def _frame_order(self) -> list:
        if self._order is None:
            hue_step = [order.index(HUE) for order in self.orders.tolist()]
            self._order = sorted(range(len(hue_step)), key=hue_step.__getitem__)
        return self._order


def draw_jitter(num_frames: int, generator: torch.Generator, brightness=0.4, contrast=0.4,
                saturation=0.2, hue=0.1) -> JitterDraw:
    """Per-frame factors (uniform in [1 - b, 1 + b], ..., [-hue, hue]) then one op order per
    frame, drawn from ``generator`` in that order."""
    ranges = torch.tensor([(1 - brightness, 1 + brightness), (1 - contrast, 1 + contrast),
                           (1 - saturation, 1 + saturation), (-hue, hue)], dtype=torch.float64)
    uniform = torch.stack([torch.rand(num_frames, generator=generator, dtype=torch.float64)
                           for _ in range(4)], 1)  # one draw per op, in op order
    factors = (ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * uniform).to(torch.float32)
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
        self.views: dict[tuple, torch.Tensor] = {}  # (name, shape) -> view of the buffer

    def get(self, name: str, *shape: int) -> torch.Tensor:
        view = self.views.get((name, shape))
        if view is not None:
            return view
        numel = 1
        for size in shape:
            numel *= size
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[name] = torch.empty(numel, dtype=torch.float32)
            self.views = {key: v for key, v in self.views.items() if key[0] != name}
        view = self.views[(name, shape)] = buffer[:numel].view(shape)
        return view


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


def _blend_frame_(x: torch.Tensor, op: int, factor: float, gray: torch.Tensor) -> None:
    """Brightness, contrast or saturation of one frame ``x`` (3, H, W), in place: torchvision's
    blend f*x + (1 - f)*y clamped to [0, 1], against y = 0, the frame's mean luma or each pixel's
    luma (``gray``: scratch (H, W)). With f <= 1 the blend is a convex combination of values in
    [0, 1] and stays there (rounding included: every term is at most its exact bound), so only
    f > 1 clamps. The mean luma is the luma of the channel means, (1 - f) is folded into the luma
    weights: float32 rounding apart, torchvision's values."""
    if op == BRIGHTNESS:
        x.mul_(factor)
        if factor > 1.0:
            x.clamp_max_(1.0)  # x >= 0 stays so
        return
    rest = 1.0 - factor
    if op == CONTRAST:
        means = x.mean(dim=(1, 2)).tolist()
        offset = rest * sum(w * m for w, m in zip(_LUMA, means))
        torch.add(torch.tensor(offset, dtype=x.dtype), x, alpha=factor, out=x)
    else:  # SATURATION
        r, g, b = x.unbind(0)
        torch.mul(r, rest * _LUMA[0], out=gray)
        gray.add_(g, alpha=rest * _LUMA[1]).add_(b, alpha=rest * _LUMA[2])
        torch.add(gray, x, alpha=factor, out=x)
    if factor > 1.0:
        x.clamp_(0.0, 1.0)


def _shift_hue_(x: torch.Tensor, shift: list) -> None:
    """Rotate the HSV hue of every pixel of planar ``x`` (3, N, H, W) by ``shift`` (N floats)
    turns, keeping saturation and value.

    In sextants (6 per turn) the hue is h = 2k + n / chroma, k = 0, 1, 2 for the channel holding
    the maximum (ties go to R, then G, as torchvision) and n its numerator g - b, b - r or r - g.
    HSV -> RGB gives channel c the value min + chroma * clamp(2 - d_c, 0, 1), d_c the distance of
    the rotated hue h' = h + 6 shift from the channel's peak 2c around the circle of 6. With
    q = n / chroma + 6 shift, h' - 2c = q + 2(k - c), and 2(k - c) taken as 0, +2 or -2 (mod 6)
    keeps |q + 2(k - c)| <= 4 while |6 shift| <= 1 (hue jitter up to 1/6 turn), where the plain
    absolute value serves as the distance (from 3 to 4 both give 0); larger shifts fold it into
    [-3, 3] first. The channel value is then max + chroma - chroma * clamp(|u_c|, 1, 2)."""
    n, h, w = x.shape[1:]
    work = _SCRATCH.get("hue", 9, n, h, w)
    maxc, top, chroma, not_r, not_g, b_max, gb, br, q = work.unbind(0)
    u = _SCRATCH.get("hue_u", 3, n, h, w)
    r, g, b = x.unbind(0)
    torch.maximum(torch.maximum(r, g, out=maxc), b, out=maxc)
    torch.sub(maxc, torch.minimum(torch.minimum(r, g, out=top), b, out=top), out=chroma)
    torch.gt(maxc, x[:2], out=work[3:5])  # not_r, not_g: 1 where R (G) is not the maximum
    torch.mul(not_r, not_g, out=b_max)  # B is the maximum
    # n = (g - b) + not_r * ((b - r) - (g - b)) - b_max * ((g - b) + 2 (b - r))
    torch.sub(g, b, out=gb)
    torch.sub(b, r, out=br)
    torch.addcmul(gb, not_r, torch.sub(br, gb, out=q), out=q)
    torch.addcmul(q, b_max, torch.add(gb, br, alpha=2.0, out=gb), value=-1.0, out=q)
    # q = n / chroma + 6 shift (grey pixels: n = 0; their value stays the maximum whatever q)
    torch.addcdiv(torch.tensor([6.0 * v for v in shift], dtype=x.dtype).view(n, 1, 1), q,
                  torch.clamp_min(chroma, torch.finfo(x.dtype).tiny, out=br), out=q)
    # u_c = q + 2(k - c): R: q + 2 not_r - 4 b_max; G: that + 6 b_max - 2; B: q - 4 not_r +
    # 2 b_max + 2
    u_r, u_g, u_b = u.unbind(0)
    torch.add(q, not_r, alpha=2.0, out=gb)
    torch.add(gb, b_max, alpha=-4.0, out=u_r)
    torch.add(gb, b_max, alpha=2.0, out=u_g)
    torch.add(u_g, not_r, alpha=-6.0, out=u_b)
    u_g.sub_(2.0)
    u_b.add_(2.0)
    if max(abs(v) for v in shift) > 1.0 / 6.0:
        u.sub_(torch.mul(u, 1.0 / 6.0, out=_SCRATCH.get("hue_fold", 3, n, h, w)).round_(),
               alpha=6.0)
    u.abs_().clamp_(1.0, 2.0)
    torch.addcmul(torch.add(maxc, chroma, out=top), u, chroma, value=-1.0, out=x)


def _blend_run_(x: torch.Tensor, run: list, gray: torch.Tensor) -> None:
    """A frame's consecutive blends ``run`` [(op, factor), ...] (no hue between them), in place.

    Every blend maps the frame to a*x + b*luma(x) + c (per frame a, b, c; luma is linear), and so
    does a chain of them as long as no clamp acts in between, which holds where the factors are
    at most 1 (``_blend_frame_``): such a chain, up to and including the next op with a factor
    above 1 (whose clamp then closes it), runs as one pass over the frame. The mean luma a
    contrast step needs follows from the frame's before the chain."""
    chain = []
    for op, factor in run:
        chain.append((op, factor))
        if factor > 1.0:
            _blend_chain_(x, chain, gray)
            chain = []
    if chain:
        _blend_chain_(x, chain, gray)


def _blend_chain_(x: torch.Tensor, chain: list, gray: torch.Tensor) -> None:
    if len(chain) == 1:
        _blend_frame_(x, chain[0][0], chain[0][1], gray)
        return
    luma_sum = sum(_LUMA)  # luma(a*x + b*luma(x) + c) = (a + b*luma_sum)*luma(x) + c*luma_sum
    a, b, c, mean = 1.0, 0.0, 0.0, None
    for op, factor in chain:
        rest = 1.0 - factor
        if op == BRIGHTNESS:
            a, b, c = factor * a, factor * b, factor * c
        elif op == CONTRAST:
            if mean is None:  # mean luma of the frame before the chain
                mean = sum(w * m for w, m in zip(_LUMA, x.mean(dim=(1, 2)).tolist()))
            current_mean = (a + b * luma_sum) * mean + c * luma_sum
            a, b, c = factor * a, factor * b, factor * c + rest * current_mean
        else:  # SATURATION
            a, b, c = (factor * a, factor * b + rest * (a + b * luma_sum),
                       factor * c + rest * c * luma_sum)
    if b != 0.0:
        r, g, bl = x.unbind(0)
        torch.mul(r, b * _LUMA[0], out=gray)
        gray.add_(g, alpha=b * _LUMA[1]).add_(bl, alpha=b * _LUMA[2]).add_(c)
        torch.add(gray, x, alpha=a, out=x)
    else:
        torch.add(torch.tensor(c, dtype=x.dtype), x, alpha=a, out=x)
    if chain[-1][1] > 1.0:
        x.clamp_(0.0, 1.0)


def jitter_planar_(x: torch.Tensor, draw: JitterDraw) -> None:
    """Colour jitter of planar ``x`` (3, T, H, W) in place; its frames must already be in
    ``draw.frame_order()`` (``to_planar(clip, draw.frame_order())``): the frames that change hue
    in the same step are one block, shifted together, after each frame's blends before its hue
    step and before those after it (frames are independent; each keeps its own op order)."""
    order = draw._frame_order()
    all_ops, all_values = draw.orders.tolist(), draw.factors.tolist()
    ops, values = [all_ops[i] for i in order], [all_values[i] for i in order]
    frames = x.unbind(1)
    gray = _SCRATCH.get("gray", *x.shape[2:])
    hue_steps = [frame_ops.index(HUE) for frame_ops in ops]
    for step in range(4):
        block = [i for i, hue_step in enumerate(hue_steps) if hue_step == step]
        if not block:
            continue
        for i in block:
            _blend_run_(frames[i], [(op, values[i][op]) for op in ops[i][:step]], gray)
        # contiguous: frames are sorted by the step at which they change hue
        _shift_hue_(x[:, block[0]:block[-1] + 1], [values[i][HUE] for i in block])
        for i in block:
            _blend_run_(frames[i], [(op, values[i][op]) for op in ops[i][step + 1:]], gray)


def grayscale_planar_(x: torch.Tensor) -> None:
    """Three identical luma channels, in place."""
    x.copy_(_luma(x).unsqueeze(0).expand_as(x))


def normalized_frames(x: torch.Tensor, mean, std, frame_order: torch.Tensor | None = None,
                      gray: bool = False) -> torch.Tensor:
    """(x - mean) / std of planar ``x`` (3, T, H, W) written straight into a new contiguous
    (T, 3, H, W) clip, undoing ``frame_order``; with ``gray`` every channel is first the luma
    (``grayscale_planar_`` then ``normalize_planar_`` then ``from_planar``, bit for bit, in one
    pass over the output instead of three)."""
    c, t, h, w = x.shape
    out = torch.empty((t, c, h, w), dtype=x.dtype)
    if gray:
        luma = _SCRATCH.get("luma", t, h, w)
        torch.mul(x[0], _LUMA[0], out=luma)
        term = _SCRATCH.get("luma_term", t, h, w)
        luma.add_(torch.mul(x[1], _LUMA[1], out=term)).add_(torch.mul(x[2], _LUMA[2], out=term))
        x = luma.unsqueeze(0).expand(c, t, h, w)
    if frame_order is None:
        for channel, m, s in zip(range(c), mean, std):
            torch.sub(x[channel], torch.tensor(m, dtype=x.dtype), out=out[:, channel]).div_(
                torch.tensor(s, dtype=x.dtype))
        return out
    means = torch.tensor(mean, dtype=x.dtype).view(c, 1, 1)
    stds = torch.tensor(std, dtype=x.dtype).view(c, 1, 1)
    sources, targets = x.unbind(1), out.unbind(0)
    for position, frame in enumerate(frame_order.tolist()):
        torch.sub(sources[position], means, out=targets[frame]).div_(stds)
    return out


def normalize_planar_(x: torch.Tensor, mean, std) -> None:
    """(x - mean) / std per channel plane, in place (float32 mean and std, as a tensor op would
    round them)."""
    for plane, m, s in zip(x, mean, std):
        plane.sub_(torch.tensor(m, dtype=x.dtype)).div_(torch.tensor(s, dtype=x.dtype))
