"""Token mixers of Video-FocalNet: spatio-temporal focal modulation and its design-space variants.

Every mixer takes normalised tokens ``x`` of shape ``(B*T, H, W, C)`` (frames folded into the
batch, time fastest, channels last) plus the frame count ``num_frames`` and returns the same shape.

Every convolution runs through the module that declares it, so forward hooks on ``h``,
``h_temporal`` and each ``focal_layers*.{l}`` (and their ``.0`` convolution / ``.1`` GELU) fire
and see tokens ``(..., C)``. The convolution modules keep the official parameter names, shapes
and initialisation (released checkpoints load unchanged, and our state dicts are the official
format); they only take channels-last tokens instead of NCHW tensors, which is what keeps the
mixer fast: a spatial convolution reads the NCHW view of the token memory (channels-last), a
temporal convolution reads a ``(B, C, T, H*W)`` view of it, and a 1x1 convolution (``h``,
``h_temporal``) is a linear layer on the channel axis. No token is copied into another layout
(the official code rearranges and clones the whole tensor twice per block).

``f`` and ``f_temporal`` are the exception: their row blocks are fused into one GEMM for
everything read element-wise (q and the gates) and separate GEMMs for each context, because a
context that feeds a convolution must be dense (a strided slice of a wider output is copied by
the convolution first). Hooks on ``f`` / ``f_temporal`` therefore do not fire.
``MODEL.FOCAL.ST_DESIGN`` picks the class via ``build_modulation``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ST_DESIGNS", "SpatialFocalModulation", "SpatioTemporalFocalModulation",
           "SequentialFocalModulation", "JointFocalModulation", "build_modulation"]

# MODEL.FOCAL.ST_DESIGN values: how time enters the token mixer (see build_modulation).
ST_DESIGNS = ("parallel", "spatial", "spatial_temporal", "temporal_spatial", "joint")


def focal_kernel_sizes(focal_level: int, focal_window: int, focal_factor: int = 2) -> list[int]:
    """Kernel of level l is ``focal_factor * l + focal_window`` (factor 2 in the reference)."""
    return [focal_factor * level + focal_window for level in range(focal_level)]


# -- convolutions on channels-last tokens ------------------------------------------------------
class _OnTokens:
    """Mixin: the convolution takes and returns channels-last tokens ``(N, *spatial, C)``.

    The permutes are views: the convolution reads channels-last memory and writes channels-last
    output, which is contiguous again as tokens (element-wise work then runs on plain contiguous
    memory: PyTorch's CPU kernels take slow paths on channels-last NCHW views, GELU was 7x slower).
    The dims are spelled non-negative: the classic ONNX exporter writes ``movedim(-1, 1)`` as a
    Transpose with perm ``{0, -1, 1, 2}``, which ONNX Runtime rejects (the same views either way:
    eager results and speed are unchanged).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.dim() - 1
        return self._conv_forward(x.movedim(last, 1), self.weight, self.bias).movedim(1, last)


class TokenConv2d(_OnTokens, nn.Conv2d):
    """nn.Conv2d on tokens ``(N, H, W, C)`` (the spatial focal levels)."""


class TokenConv3d(_OnTokens, nn.Conv3d):
    """nn.Conv3d on tokens ``(B, T, H, W, C)`` (the ``joint`` design's focal levels)."""


class _Pointwise:
    """Mixin: a kernel-1 convolution applied to tokens ``(..., C)`` as a linear layer on ``C``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.flatten(1), self.bias)


class PointwiseConv2d(_Pointwise, nn.Conv2d):
    """1x1 nn.Conv2d on tokens ``(..., C)`` (``h``); weight ``(C, C, 1, 1)`` as in checkpoints."""


class PointwiseConv1d(_Pointwise, nn.Conv1d):
    """kernel-1 nn.Conv1d on tokens ``(..., C)`` (``h_temporal``); weight ``(C, C, 1)``."""


class TemporalConv1d(nn.Conv1d):
    """Dense nn.Conv1d along time on tokens ``(B, T, P, C)`` (P = H*W positions).

    The official code rearranges the tokens to ``(B*P, C, T)`` for it; the same operation is a
    ``(k, 1)`` Conv2d over the ``(B, C, T, P)`` view of the token memory, which reads the tokens
    in place. Stride, dilation and groups are 1; the padding keeps T.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x.permute(0, 3, 1, 2), self.weight.unsqueeze(-1), self.bias,
                       padding=(self.padding[0], 0))
        return out.permute(0, 2, 3, 1)


def _focal_layers(conv: type, dim: int, kernel_sizes: list[int], **kwargs) -> nn.ModuleList:
    # Level l: convolution with kernel k_l, zero padding k_l // 2 (keeps the size), no bias, GELU.
    return nn.ModuleList(
        nn.Sequential(conv(dim, dim, k, padding=k // 2, bias=False, **kwargs), nn.GELU())
        for k in kernel_sizes)


# -- the shared computation --------------------------------------------------------------------
def _gated_sum(ctx_all: torch.Tensor | None, ctx: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    # ctx_all + ctx * gate in one pass (the product is never materialised); ctx_all is always a
    # fresh intermediate here, so updating it in place is safe for autograd.
    return ctx * gate if ctx_all is None else ctx_all.addcmul_(ctx, gate)


def _hierarchical_context(ctx: torch.Tensor, gates: torch.Tensor, focal_layers: nn.ModuleList,
                          mean_dims: tuple[int, ...], normalize: bool) -> torch.Tensor:
    """``ctx_all``: every focal level of ``ctx`` (tokens, channels last) gated and summed.

    ``gates`` has the token shape with L+1 channels. The global level is GELU of the mean over
    ``mean_dims`` of the **last level's output**, not of the input (reference behaviour).
    """
    focal_level = len(focal_layers)
    ctx_all = None
    for level, layer in enumerate(focal_layers):
        ctx = layer(ctx)
        ctx_all = _gated_sum(ctx_all, ctx, gates[..., level:level + 1])
    ctx_global = F.gelu(ctx.mean(mean_dims, keepdim=True))  # exact erf form, as nn.GELU()
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


def _temporal_modulator(module: nn.Module, ctx: torch.Tensor, gates: torch.Tensor,
                        num_frames: int) -> torch.Tensor:
    """``h_temporal(ctx_all_t)`` as ``(B*T, H, W, C)`` from a temporal context and its gates."""
    n, height, width, _ = ctx.shape
    shape = (n // num_frames, num_frames, height * width, -1)  # (B, T, P, .): free views
    ctx_all = _hierarchical_context(ctx.reshape(shape), gates.reshape(shape),
                                    module.focal_layers_temporal, (1,), module.normalize_modulator)
    return module.h_temporal(ctx_all.reshape(n, height, width, -1))


# -- the mixers ----------------------------------------------------------------------------------
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
        self.h = PointwiseConv2d(dim, dim, kernel_size=1, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = _focal_layers(TokenConv2d, dim, self.kernel_sizes, groups=dim)
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
        ctx_all = _hierarchical_context(ctx, gates, self.focal_layers, (1, 2),
                                        self.normalize_modulator)
        return q * self.h(ctx_all)

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
        self.h_temporal = PointwiseConv1d(dim, dim, kernel_size=1, bias=True)
        self.focal_layers_temporal = _focal_layers(TemporalConv1d, dim, self.kernel_sizes)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        dim, levels = self.dim, self.focal_level + 1
        # One GEMM for everything read element-wise (q and both gate sets), one per context.
        q, gates, gates_t = _project(
            x, (self.f, 0, dim), (self.f, 2 * dim, 2 * dim + levels),
            (self.f_temporal, dim, dim + levels)).split((dim, levels, levels), dim=-1)
        ctx = _project(x, (self.f, dim, 2 * dim))
        ctx_t = _project(x, (self.f_temporal, 0, dim))
        modulator_t = _temporal_modulator(self, ctx_t, gates_t, num_frames)
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
        self.h_temporal = PointwiseConv1d(dim, dim, kernel_size=1, bias=True)
        self.focal_layers_temporal = _focal_layers(TemporalConv1d, dim, self.kernel_sizes)

    def temporal_modulation(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``q_t * h_temporal(ctx_all_t)`` for ``x (N, H, W, C)``."""
        dim, levels = self.dim, self.focal_level + 1
        q, gates = _project(x, (self.f_temporal, 0, dim),
                            (self.f_temporal, 2 * dim, 2 * dim + levels)).split((dim, levels), -1)
        ctx = _project(x, (self.f_temporal, dim, 2 * dim))
        return q * _temporal_modulator(self, ctx, gates, num_frames)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.order == "spatial_temporal":
            x = self.temporal_modulation(self.spatial_modulation(x), num_frames)
        else:
            x = self.spatial_modulation(self.temporal_modulation(x, num_frames))
        return self.output(x)


class JointFocalModulation(SpatialFocalModulation):
    """``joint`` design: one focal modulation over space-time with depthwise 3-D kernels.

    ``f`` gives q, ctx, gates per token; level l is a depthwise ``k_l x k_l x k_l`` Conv3d (zero
    padding ``k_l // 2``, no bias) + GELU over ``(B, T, H, W, C)``; the global level is
    GELU(mean over T, H, W) of the last level; ``proj(q * h(ctx_all))``. ``h`` stays the 2-D 1x1
    convolution (a 1x1x1 convolution is the same map), and ``focal_layers.{l}.0`` keeps its name
    with a 5-D weight ``(C, 1, k, k, k)``; 2-D checkpoints are inflated by repeating each kernel
    over time and dividing by k (see ``video_focalnet.checkpoint``).
    """

    def __init__(self, dim: int, focal_level: int = 2, focal_window: int = 3, **kwargs):
        super().__init__(dim, focal_level, focal_window, **kwargs)
        self.focal_layers = _focal_layers(TokenConv3d, dim, self.kernel_sizes, groups=dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, height, width, dim = x.shape
        levels = self.focal_level + 1
        q, gates = _project(x, (self.f, 0, dim), (self.f, 2 * dim, 2 * dim + levels)).split(
            (dim, levels), dim=-1)
        ctx = _project(x, (self.f, dim, 2 * dim))
        shape = (n // num_frames, num_frames, height, width, -1)  # (B, T, H, W, .)
        ctx_all = _hierarchical_context(ctx.reshape(shape), gates.reshape(shape),
                                        self.focal_layers, (1, 2, 3), self.normalize_modulator)
        return self.output(q * self.h(ctx_all.reshape(n, height, width, dim)))


def build_modulation(design: str, dim: int, **kwargs) -> SpatialFocalModulation:
    """The token mixer for ``MODEL.FOCAL.ST_DESIGN`` (one of ``ST_DESIGNS``)."""
    if design == "parallel":
        return SpatioTemporalFocalModulation(dim, **kwargs)
    if design == "spatial":
        return SpatialFocalModulation(dim, **kwargs)
    if design in ("spatial_temporal", "temporal_spatial"):
        return SequentialFocalModulation(dim, order=design, **kwargs)
    if design == "joint":
        return JointFocalModulation(dim, **kwargs)
    raise ValueError(f"unknown spatio-temporal design {design!r} (MODEL.FOCAL.ST_DESIGN); choose "
                     f"one of {', '.join(ST_DESIGNS)}")
