"""CLIP towers used by Vita-CLIP: the ViT video encoder (with deep global prompts and a time
embedding) and the causal text transformer.

Parameter names are the official Vita-CLIP ones (``visual.blocks.i.attn.q_proj`` ...,
``textual.transformer.resblocks.i.attn.in_proj_weight`` ...) so released checkpoints load strict;
OpenAI CLIP files are converted by ``vita_clip.weights``.

Numerics follow CLIP: QuickGELU, LayerNorm eps 1e-5 computed in float32 for half inputs, softmax
inside ``scaled_dot_product_attention`` (float32 accumulation on every backend).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from . import tokenizer as tk
from .prompts import PromptedBlock, uniform_prompt_init_

__all__ = ["LayerNorm", "QuickGELU", "Linear", "Attention", "CLIPVisionEncoder",
           "CLIPTextEncoder", "TextResidualBlock", "frozen_aware_linear"]

_HALF = (torch.float16, torch.bfloat16)


def _frozen_cast(owner: nn.Module, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A frozen parameter in `dtype`, cast once and reused while the parameter is unchanged.

    Autocast only caches casts of weights that require grad, so without this every frozen CLIP
    weight would be re-cast on every use (several times per block for k/v).
    """
    cache = owner.__dict__.setdefault("_cast_cache", {})
    key = (tensor._version, tensor.dtype, tensor.device, dtype)
    hit = cache.get(id(tensor))
    if hit is None or hit[0] != key:
        hit = (key, tensor.detach().to(dtype))
        cache[id(tensor)] = hit
    return hit[1]


def frozen_aware_linear(owner: nn.Module, x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear that, under autocast, uses cached low-precision copies of frozen weights.

    Not while torch.compile traces: the cache is keyed on tensor versions (data that would break
    the graph), and in a compiled graph the casts are graph operations anyway.
    """
    device = x.device.type
    if (weight.requires_grad or not torch.is_autocast_enabled(device)
            or torch.compiler.is_compiling()):
        return F.linear(x, weight, bias)
    dtype = torch.get_autocast_dtype(device)
    if dtype not in _HALF:
        return F.linear(x, weight, bias)
    with torch.autocast(device, enabled=False):
        return F.linear(x.to(dtype), _frozen_cast(owner, weight, dtype),
                        None if bias is None else _frozen_cast(owner, bias, dtype))


class Linear(nn.Linear):
    """nn.Linear (same parameters) whose frozen weights are cast once under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_aware_linear(self, x, self.weight, self.bias)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False
              ) -> torch.Tensor:
    """scaled_dot_product_attention; on CPU half inputs run in float32 (the CPU kernels are
    faster in float32 than in bfloat16, backward especially; on GPU the half kernels are used)."""
    if q.device.type == "cpu" and q.dtype in _HALF:
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=is_causal)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


class QuickGELU(nn.Module):
    """CLIP's activation x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.LayerNorm):
    """LayerNorm that normalises half-precision inputs in float32 (as CLIP does) and returns the
    input dtype; float32/float64 inputs are normalised in their own dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            # normalise in float32, hand the (q/k/v or fc1) projections their autocast dtype
            # once instead of letting each of them cast the float32 output again
            with torch.autocast(x.device.type, enabled=False):
                out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(),
                                   self.bias.float(), self.eps)
            return out.to(torch.get_autocast_dtype(x.device.type))
        if x.dtype in _HALF:
            weight = self.weight.float() if self.weight is not None else None
            bias = self.bias.float() if self.bias is not None else None
            out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
            return out.to(x.dtype)
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (official layout).

    Heads are contiguous channel slices as in nn.MultiheadAttention; q is scaled by
    1/sqrt(head_dim) inside scaled_dot_product_attention. `extra_kv` adds key/value rows of
    tokens that are attended to but whose own outputs are not needed (the prompts).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q_proj = Linear(dim, dim)
        self.k_proj = Linear(dim, dim)
        self.v_proj = Linear(dim, dim)
        self.out_proj = Linear(dim, dim)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def key_value(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.k_proj(tokens), self.v_proj(tokens)

    def forward(self, x: torch.Tensor, extra_kv: Sequence[Tuple[torch.Tensor, torch.Tensor]] = ()
                ) -> torch.Tensor:
        n, length, dim = x.shape
        heads = self.num_heads
        k, v = self.key_value(x)
        if extra_kv:
            k = torch.cat([k] + [pair[0] for pair in extra_kv], dim=1)
            v = torch.cat([v] + [pair[1] for pair in extra_kv], dim=1)

        def split(t):
            return t.view(n, t.shape[1], heads, dim // heads).transpose(1, 2)

        mixed = attention(split(self.q_proj(x)), split(k), split(v))
        return self.out_proj(mixed.transpose(1, 2).reshape(n, length, dim))


class CLIPVisionEncoder(nn.Module):
    """ViT over the frames of a clip -> mean of per-frame CLIP embeddings [B, embed_dim].

    Takes channels-first video [B, C, T, H, W] (the official layout); VitaCLIP converts.
    """

    def __init__(self, input_size: Tuple[int, int] = (224, 224), num_frames: int = 8,
                 feature_dim: int = 768, patch_size: Tuple[int, int] = (16, 16),
                 num_heads: int = 12, num_layers: int = 12, mlp_factor: float = 4.0,
                 embed_dim: int = 512, use_summary_token: bool = False,
                 use_local_prompts: bool = False, use_global_prompts: bool = False,
                 num_global_prompts: int = 8):
        super().__init__()
        input_size, patch_size = _pair(input_size), _pair(patch_size)
        if input_size[0] % patch_size[0] or input_size[1] % patch_size[1]:
            raise ValueError(f"input size {input_size} is not a multiple of the patch size "
                             f"{patch_size}")
        self.num_frames = num_frames
        self.feature_dim = feature_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, feature_dim, kernel_size=patch_size,
                                          stride=patch_size)
        num_tokens = (input_size[0] // patch_size[0]) * (input_size[1] // patch_size[1]) + 1
        self.cls_token = nn.Parameter(torch.zeros(feature_dim))
        self.pos_embed = nn.Parameter(torch.zeros(num_tokens, feature_dim))
        self.time_embed = nn.Parameter(torch.zeros(num_frames, feature_dim))
        self.blocks = nn.ModuleList([
            PromptedBlock(feature_dim, num_heads, mlp_factor, num_frames, patch_size,
                          use_summary_token, use_local_prompts, Attention, LayerNorm, QuickGELU,
                          Linear)
            for _ in range(num_layers)])
        self.ln_pre = LayerNorm(feature_dim)
        self.ln_post = LayerNorm(feature_dim)
        self.proj = nn.Parameter(feature_dim ** -0.5 * torch.randn(feature_dim, embed_dim))
        self.use_global_prompts = use_global_prompts
        self.num_global_prompts = num_global_prompts if use_global_prompts else 0
        if use_global_prompts:
            self.global_prompts = nn.Parameter(
                torch.zeros(num_layers, num_global_prompts, feature_dim))
            uniform_prompt_init_(self.global_prompts, patch_size, feature_dim)
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.normal_(p, std=0.02)
        self.grad_checkpointing = False

    def _time_embedding(self, frames: int) -> torch.Tensor:
        if frames == self.time_embed.shape[0]:
            return self.time_embed
        # the reference resizes the table along time by nearest-neighbour interpolation
        table = self.time_embed.t().unsqueeze(0)
        return F.interpolate(table, size=frames, mode="nearest").squeeze(0).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if (b * t) % self.num_frames:
            raise ValueError(f"the prompt blocks group frames by the model's {self.num_frames} "
                             f"frames, so a clip of {t} frames (batch {b}) cannot be split; "
                             f"feed a multiple of {self.num_frames} frames")
        x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)  # row b*T + t
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        # parameters are added without casting: under autocast the residual stream stays float32
        cls = self.cls_token.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        # the time embedding reaches every token of frame t, the class token included
        x = (x.view(b, t, -1, self.feature_dim)
             + self._time_embedding(t)[None, :, None, :]).flatten(0, 1)
        # under autocast LayerNorm hands out the low-precision dtype; the stream stays float32
        x = self.ln_pre(x).to(x.dtype)
        use_ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            prompts = self.global_prompts[i] if self.use_global_prompts else None
            x = checkpoint(block, x, prompts, use_reentrant=False) if use_ckpt \
                else block(x, prompts)
        cls_out = self.ln_post(x[:, 0]) @ self.proj
        return cls_out.view(b, t, -1).mean(dim=1)


class TextAttention(nn.Module):
    """Causal self-attention with nn.MultiheadAttention's parameter names (packed in_proj)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"text width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = frozen_aware_linear(self, x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        # unbind, not qkv[0], qkv[1], qkv[2]: the backward of three selects zero-fills and adds
        # three full-size [3, n, heads, length, head_dim] buffers, unbind's stacks once
        q, k, v = qkv.unbind(0)
        mixed = attention(q, k, v, is_causal=True)
        return self.out_proj(mixed.transpose(1, 2).reshape(n, length, dim))


class TextResidualBlock(nn.Module):
    """CLIP text block: x + attn(ln_1 x); x + mlp(ln_2 x) (causal)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = TextAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", Linear(width, width * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", Linear(width * 4, width)),
        ]))
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CLIPTextEncoder(nn.Module):
    """CLIP's text transformer: token embeddings [C, L, W] + ids [C, L] -> features [C, E].

    Only the EOT row is read and attention is causal, so positions after the longest prompt's
    EOT cannot change the result: the sequence is cut there (exactly the same numbers as running
    all `context_length` positions, several times faster for short class prompts). Callers with
    fixed token ids pass that cut `length` (``tokenizer.text_length``, a Python int): read from
    the ids inside a torch.compile graph it would be a data-dependent shape (a graph break).
    """

    def __init__(self, embed_dim: int = 512, context_length: int = 77, vocab_size: int = 49408,
                 transformer_width: int = 512, transformer_heads: int = 8,
                 transformer_layers: int = 12):
        super().__init__()
        self.context_length = context_length
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            [TextResidualBlock(transformer_width, transformer_heads)
             for _ in range(transformer_layers)])
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=transformer_width ** -0.5)
        self.grad_checkpointing = False

    def forward(self, prompts: torch.Tensor, tokenized_prompts: torch.Tensor,
                length: int | None = None) -> torch.Tensor:
        eot = tokenized_prompts.argmax(dim=-1).to(prompts.device)
        if length is None:
            length = tk.text_length(tokenized_prompts)
        x = prompts[:, :length] + self.positional_embedding[:length]
        use_ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        for block in self.transformer.resblocks:
            x = checkpoint(block, x, use_reentrant=False) if use_ckpt else block(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return self.ln_final(x) @ self.text_projection

    def encode_tokens(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Features of plain token ids [C, L] (no learned context)."""
        return self.forward(self.token_embedding(tokens.to(self.token_embedding.weight.device)),
                            tokens, length)


def _pair(value) -> Tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value}")
    return value


def count_parameters(module: nn.Module) -> Tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total
