"""Token mixers of Video-FocalNet: spatio-temporal focal modulation and its design-space variants.

Every mixer takes normalised tokens ``x`` of shape ``(B*T, H, W, C)`` (frames folded into the
batch, time fastest, channels last) plus the frame count ``num_frames`` and returns the same shape.
All work happens channels-last: the 1x1 convolutions ``h``/``h_temporal`` are applied as linear
layers on the channel axis, depthwise spatial convolutions run on channels-last memory, and the
dense temporal convolutions run as a ``(k, 1)`` 2-D convolution over a ``(B, C, T, H*W)`` view of
the same memory. That way no token is copied into another layout (the reference rearranges and
clones the whole tensor twice per block). The contexts that feed convolutions get their own
projections (dense outputs, no copy), and gated sums use ``addcmul_``. Benchmarks: README. Parameter names and shapes are the official ones, so
released checkpoints load unchanged; ``MODEL.FOCAL.ST_DESIGN`` picks the class via
``build_modulation``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SpatialFocalModulation", "SpatioTemporalFocalModulation",
           "SequentialFocalModulation", "JointFocalModulation", "build_modulation",
           "focal_kernel_sizes"]


def focal_kernel_sizes(focal_level: int, focal_window: int, focal_factor: int = 2) -> list[int]:
    """Kernel of level l is ``focal_factor * l + focal_window`` (factor 2 in the reference)."""
    return [focal_factor * level + focal_window for level in range(focal_level)]


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)  # exact erf form, as nn.GELU() in the reference


def _gated_sum(ctx_all: torch.Tensor | None, ctx: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    # ctx_all + ctx * gate in one pass (the product is never materialised); ctx_all is always a
    # fresh intermediate here, so updating it in place is safe for autograd.
    return ctx * gate if ctx_all is None else ctx_all.addcmul_(ctx, gate)


def _spatial_context(ctx: torch.Tensor, gates: torch.Tensor, focal_layers: nn.ModuleList,
                     normalize: bool) -> torch.Tensor:
    """Hierarchical depthwise context of ``ctx (N, H, W, C)`` gated by ``gates (N, H, W, L+1)``.

    Element-wise work and reductions run on the ``(..., C)`` view, where the memory is plain
    contiguous (PyTorch's CPU kernels take slow paths on channels-last NCHW views: GELU was 7x
    slower); only the convolution sees the NCHW view of the same memory (channels-last).
    """
    focal_level = len(focal_layers)
    ctx_all = None
    for level, layer in enumerate(focal_layers):
        conv = layer[0]
        out = F.conv2d(ctx.permute(0, 3, 1, 2), conv.weight, None, 1, conv.padding, 1, conv.groups)
        ctx = _gelu(out.permute(0, 2, 3, 1))
        ctx_all = _gated_sum(ctx_all, ctx, gates[..., level:level + 1])
    # The global level sees the output of the last level, not the input (reference behaviour).
    ctx_global = _gelu(ctx.mean((1, 2), keepdim=True))
    ctx_all = _gated_sum(ctx_all, ctx_global, gates[..., focal_level:])
    if normalize:
        ctx_all = ctx_all / (focal_level + 1)
    return ctx_all


def _temporal_context(ctx: torch.Tensor, gates: torch.Tensor, focal_layers: nn.ModuleList,
                      normalize: bool) -> torch.Tensor:
    """Hierarchical temporal context of ``ctx (B, T, P, C)`` gated by ``gates (B, T, P, L+1)``.

    The dense Conv1d of the reference (kernel k along time, applied at every position P = H*W) is
    the same operation as a ``(k, 1)`` Conv2d over ``(B, C, T, P)``; on the channels-last view of
    the token memory it reads the tokens in place instead of rearranging them to ``(B*P, C, T)``.
    """
    focal_level = len(focal_layers)
    ctx_all = None
    for level, layer in enumerate(focal_layers):
        conv = layer[0]
        weight = conv.weight.unsqueeze(-1)  # (C, C, k) -> (C, C, k, 1)
        out = F.conv2d(ctx.permute(0, 3, 1, 2), weight, None, 1, (conv.padding[0], 0))
        ctx = _gelu(out.permute(0, 2, 3, 1))
        ctx_all = _gated_sum(ctx_all, ctx, gates[..., level:level + 1])
    ctx_global = _gelu(ctx.mean(1, keepdim=True))
    ctx_all = _gated_sum(ctx_all, ctx_global, gates[..., focal_level:])
    if normalize:
        ctx_all = ctx_all / (focal_level + 1)
    return ctx_all


def _project(x: torch.Tensor, *parts: tuple[nn.Linear, int, int]) -> torch.Tensor:
    """Output rows ``[start, stop)`` of each ``(linear, start, stop)`` part, in one GEMM.

    Separate projections give dense outputs: a context that feeds a convolution must not be a
    strided slice of a wider GEMM output, or the convolution first copies it.
    """
    if len(parts) == 1:
        linear, start, stop = parts[0]
        return F.linear(x, linear.weight[start:stop], linear.bias[start:stop])
    weight = torch.cat([linear.weight[start:stop] for linear, start, stop in parts])
    bias = torch.cat([linear.bias[start:stop] for linear, start, stop in parts])
    return F.linear(x, weight, bias)


def _pointwise(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """A 1x1 (or k=1) convolution applied channels-last as a linear layer on the last axis."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


def _temporal_convs(dim: int, kernel_sizes: list[int]) -> nn.ModuleList:
    # Dense (groups=1) C->C convolutions along time, no bias, zero padding keeps T.
    return nn.ModuleList(nn.Sequential(nn.Conv1d(dim, dim, k, padding=k // 2, bias=False),
                                       nn.GELU()) for k in kernel_sizes)


class SpatialFocalModulation(nn.Module):
    """``spatial`` design: the 2-D FocalNet modulation applied to every frame on its own.

    ``proj(q * h(ctx_all))``; time is only mixed by the final mean over frames. Has exactly the
    parameters of an ImageNet FocalNet block's modulation, so 2-D weights load 1:1. It is also the
    base of the other mixers, which add temporal parts with ``_temporal`` names.
    """

    def __init__(self, dim: int, focal_level: int = 2, focal_window: int = 3,
                 focal_factor: int = 2, proj_drop: float = 0.0, use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False):
        super().__init__()
        self.dim = dim
        self.focal_level = focal_level
        self.normalize_modulator = normalize_modulator
        self.kernel_sizes = focal_kernel_sizes(focal_level, focal_window, focal_factor)
        self.f = nn.Linear(dim, 2 * dim + focal_level + 1, bias=True)
        self.h = nn.Conv2d(dim, dim, kernel_size=1, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=False), nn.GELU())
            for k in self.kernel_sizes)
        self.use_postln_in_modulation = use_postln_in_modulation
        if use_postln_in_modulation:
            self.ln = nn.LayerNorm(dim)

    def spatial_modulation(self, x: torch.Tensor) -> torch.Tensor:
        """``q * h(ctx_all)`` for ``x (N, H, W, C)``, before ``ln``/``proj``."""
        dim, levels = self.dim, self.focal_level + 1
        q, gates = _project(x, (self.f, 0, dim), (self.f, 2 * dim, 2 * dim + levels)).split(
            (dim, levels), dim=-1)
        return self.modulate(q, _project(x, (self.f, dim, 2 * dim)), gates)

    def modulate(self, q: torch.Tensor, ctx: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``q * h(ctx_all)`` from the three parts of ``f``'s output (all ``(N, H, W, .)``)."""
        ctx_all = _spatial_context(ctx, gates, self.focal_layers, self.normalize_modulator)
        return q * _pointwise(ctx_all, self.h)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_postln_in_modulation:
            x = self.ln(x)
        return self.proj_drop(self.proj(x))

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.output(self.spatial_modulation(x))


class SpatioTemporalFocalModulation(SpatialFocalModulation):
    """``parallel`` design (the released Video-FocalNet): spatial and temporal branches side by side.

    Both branches read the same normalised tokens. The temporal branch has no query: ``f_temporal``
    gives ``C`` context channels and ``L+1`` gates, dense temporal convolutions aggregate context
    along time at every position, and the output is ``proj(q * h(ctx_all) * h_temporal(ctx_all_t))``.
    """

    def __init__(self, dim: int, focal_level: int = 2, focal_window: int = 3, **kwargs):
        super().__init__(dim, focal_level, focal_window, **kwargs)
        self.f_temporal = nn.Linear(dim, dim + focal_level + 1, bias=True)
        self.h_temporal = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.focal_layers_temporal = _temporal_convs(dim, self.kernel_sizes)

    def temporal_modulator(self, ctx: torch.Tensor, gates: torch.Tensor, num_frames: int
                           ) -> torch.Tensor:
        """``h_temporal(ctx_all_t)`` from ``f_temporal``'s parts, as ``(B*T, H, W, C)``."""
        n, height, width, dim = ctx.shape
        shape = (n // num_frames, num_frames, height * width, -1)
        ctx_all = _temporal_context(ctx.reshape(shape), gates.reshape(shape),
                                    self.focal_layers_temporal, self.normalize_modulator)
        modulator = _pointwise(ctx_all, self.h_temporal)
        return modulator.reshape(n, height, width, dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        dim, levels = self.dim, self.focal_level + 1
        # One GEMM for everything read element-wise (q and both gate sets), one per context.
        q, gates, gates_t = _project(
            x, (self.f, 0, dim), (self.f, 2 * dim, 2 * dim + levels),
            (self.f_temporal, dim, dim + levels)).split((dim, levels, levels), dim=-1)
        ctx = _project(x, (self.f, dim, 2 * dim))
        ctx_t = _project(x, (self.f_temporal, 0, dim))
        modulator_t = self.temporal_modulator(ctx_t, gates_t, num_frames)
        return self.output(self.modulate(q, ctx, gates) * modulator_t)


class SequentialFocalModulation(SpatialFocalModulation):
    """``spatial_temporal`` / ``temporal_spatial`` designs: two focal modulations in series.

    Simplest reading of the paper's sequential variants (the paper's exact wiring could not be
    checked): the spatial operator is ``q * h(ctx_all)`` of the 2-D FocalNet; the temporal operator
    is its 1-D analogue along time, with its own query (``f_temporal``: C -> 2C+L+1 giving q_t,
    ctx_t, gates_t), dense temporal convolutions with the spatial kernel sizes, a global mean over
    time and ``h_temporal``: ``q_t * h_temporal(ctx_all_t)``. ``order`` says which runs first; the
    second consumes the first's output directly (no norm or residual in between), and a single
    ``proj`` (plus the optional ``ln``) follows both.
    """

    def __init__(self, dim: int, focal_level: int = 2, focal_window: int = 3,
                 order: str = "spatial_temporal", **kwargs):
        super().__init__(dim, focal_level, focal_window, **kwargs)
        if order not in ("spatial_temporal", "temporal_spatial"):
            raise ValueError(f"order must be spatial_temporal or temporal_spatial, got {order!r}")
        self.order = order
        self.f_temporal = nn.Linear(dim, 2 * dim + focal_level + 1, bias=True)
        self.h_temporal = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.focal_layers_temporal = _temporal_convs(dim, self.kernel_sizes)

    def temporal_modulation(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, height, width, dim = x.shape
        levels = self.focal_level + 1
        q, gates = _project(x, (self.f_temporal, 0, dim),
                            (self.f_temporal, 2 * dim, 2 * dim + levels)).split((dim, levels), -1)
        ctx = _project(x, (self.f_temporal, dim, 2 * dim))
        shape = (n // num_frames, num_frames, height * width, -1)
        ctx_all = _temporal_context(ctx.reshape(shape), gates.reshape(shape),
                                    self.focal_layers_temporal, self.normalize_modulator)
        modulator = _pointwise(ctx_all, self.h_temporal)
        return q * modulator.reshape(n, height, width, dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.order == "spatial_temporal":
            x = self.temporal_modulation(self.spatial_modulation(x), num_frames)
        else:
            x = self.spatial_modulation(self.temporal_modulation(x, num_frames))
        return self.output(x)


class JointFocalModulation(SpatialFocalModulation):
    """``joint`` design: one focal modulation over space-time with depthwise 3-D kernels.

    ``f`` gives q, ctx, gates per token; level l is a depthwise ``k_l x k_l x k_l`` Conv3d (zero
    padding ``k_l // 2``, no bias) + GELU over ``(B, C, T, H, W)``; the global level is
    GELU(mean over T, H, W) of the last level; ``proj(q * h(ctx_all))``. ``h`` stays the 2-D 1x1
    convolution (a 1x1x1 convolution is the same map), and ``focal_layers.{l}.0`` keeps its name
    with a 5-D weight ``(C, 1, k, k, k)``; 2-D checkpoints are inflated by repeating each kernel
    over time and dividing by k (see ``video_focalnet.checkpoint``).
    """

    def __init__(self, dim: int, focal_level: int = 2, focal_window: int = 3, **kwargs):
        super().__init__(dim, focal_level, focal_window, **kwargs)
        self.focal_layers = nn.ModuleList(
            nn.Sequential(nn.Conv3d(dim, dim, k, padding=k // 2, groups=dim, bias=False), nn.GELU())
            for k in self.kernel_sizes)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, height, width, dim = x.shape
        levels = self.focal_level + 1
        q, gates = _project(x, (self.f, 0, dim), (self.f, 2 * dim, 2 * dim + levels)).split(
            (dim, levels), dim=-1)
        ctx = _project(x, (self.f, dim, 2 * dim))
        shape = (n // num_frames, num_frames, height, width, -1)
        ctx, gates = ctx.reshape(shape), gates.reshape(shape)  # (B, T, H, W, .)
        ctx_all = None
        for level, layer in enumerate(self.focal_layers):
            conv = layer[0]
            out = F.conv3d(ctx.permute(0, 4, 1, 2, 3), conv.weight, None, 1, conv.padding, 1,
                           conv.groups)  # on (B, C, T, H, W) channels-last memory
            ctx = _gelu(out.permute(0, 2, 3, 4, 1))
            ctx_all = _gated_sum(ctx_all, ctx, gates[..., level:level + 1])
        ctx_global = _gelu(ctx.mean((1, 2, 3), keepdim=True))
        ctx_all = _gated_sum(ctx_all, ctx_global, gates[..., self.focal_level:])
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        modulator = _pointwise(ctx_all, self.h).reshape(n, height, width, dim)
        return self.output(q * modulator)


def build_modulation(design: str, dim: int, **kwargs) -> SpatialFocalModulation:
    """The token mixer for ``MODEL.FOCAL.ST_DESIGN``."""
    if design == "parallel":
        return SpatioTemporalFocalModulation(dim, **kwargs)
    if design == "spatial":
        return SpatialFocalModulation(dim, **kwargs)
    if design in ("spatial_temporal", "temporal_spatial"):
        return SequentialFocalModulation(dim, order=design, **kwargs)
    if design == "joint":
        return JointFocalModulation(dim, **kwargs)
    raise ValueError(f"unknown spatio-temporal design {design!r} (MODEL.FOCAL.ST_DESIGN); choose "
                     "parallel, spatial, spatial_temporal, temporal_spatial or joint")
