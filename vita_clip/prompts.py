"""Vita-CLIP's prompts: the vision block with local (frame-conditioned) prompts and the per-frame
summary token, and the CoOp-style learned text context.

Global prompts (one fresh set per layer) are handed to each block by the encoder loop in
``clip.py``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import reduce
from operator import mul
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from . import tokenizer as tk

__all__ = ["PromptedBlock", "TextPromptLearner", "uniform_prompt_init_"]


def uniform_prompt_init_(tensor: torch.Tensor, patch_size: Sequence[int], dim: int) -> None:
    """Uniform(-a, a), a = sqrt(6 / (3 * patch area + dim)) (xavier bound of the patch stem)."""
    bound = math.sqrt(6.0 / float(3 * reduce(mul, patch_size, 1) + dim))
    nn.init.uniform_(tensor, -bound, bound)


class PromptedBlock(nn.Module):
    """Pre-LN ViT block with Vita-CLIP's local prompts and summary token.

    Reference token order during attention: [cls | local (T) | global (G) | patches | summary];
    every prompt token is discarded after the attention (global ones after the MLP, whose output
    for them is unused), so only the class and patch tokens need queries, outputs and the MLP.
    As in the reference, frames are grouped by the constructor's `num_frames`, not the input's.
    """

    def __init__(self, dim: int, num_heads: int, mlp_factor: float, num_frames: int,
                 patch_size: Sequence[int], use_summary_token: bool, use_local_prompts: bool,
                 attention_cls, norm_cls, act_cls, linear_cls=nn.Linear):
        super().__init__()
        self.attn = attention_cls(dim, num_heads)
        hidden = round(mlp_factor * dim)
        self.mlp = nn.Sequential(OrderedDict([
            ("fc1", linear_cls(dim, hidden)),
            ("act", act_cls()),
            ("dropout", nn.Dropout(0.0)),
            ("fc2", linear_cls(hidden, dim)),
        ]))
        for layer in (self.mlp.fc1, self.mlp.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=1e-6)
        self.norm1 = norm_cls(dim)
        self.norm2 = norm_cls(dim)
        self.num_frames = num_frames
        self.use_summary_token = use_summary_token
        self.use_local_prompts = use_local_prompts
        if use_summary_token or use_local_prompts:
            # shared by both paths; frozen under the official rule (see spec section 9.1)
            self.cls_proj = linear_cls(dim, dim)
        if use_summary_token:
            self.summary_ln = norm_cls(dim)
            self.summary_attn_layer = attention_cls(dim, num_heads)
        if use_local_prompts:
            self.local_prompts = nn.Parameter(torch.zeros(1, num_frames, dim))
            uniform_prompt_init_(self.local_prompts, patch_size, dim)

    def forward(self, x: torch.Tensor, global_prompts: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """x: [B*T, 1 + patches, dim] (class token first); global_prompts: [G, dim] or None.

        The reference inserts every prompt into the sequence and drops it again: prompts are
        only ever keys/values (their own outputs are discarded before the next layer). So here
        the prompts enter the attention as extra key/value rows only, projected once where they
        are shared (global prompts by all frames, local prompts by the frames of a video). Same
        result, fewer tokens through q/out/MLP and no insert/remove copies.
        """
        frames_total, _, dim = x.shape
        extra_kv = []
        if self.use_summary_token or self.use_local_prompts:
            frames = self.num_frames
            videos = frames_total // frames
            cls_proj = self.cls_proj(x[:, 0].reshape(videos, frames, dim))
            if self.use_local_prompts:
                local = self.local_prompts + cls_proj  # [videos, T, dim]
                # every frame of a video sees all T frame-conditioned prompts of that video
                k, v = self.attn.key_value(self.norm1(local))
                extra_kv.append((k.repeat_interleave(frames, dim=0),
                                 v.repeat_interleave(frames, dim=0)))
        if global_prompts is not None:
            k, v = self.attn.key_value(self.norm1(global_prompts))
            extra_kv.append((k.expand(frames_total, -1, -1), v.expand(frames_total, -1, -1)))
        if self.use_summary_token:
            summary = cls_proj + self.summary_attn_layer(self.summary_ln(cls_proj))
            k, v = self.attn.key_value(self.norm1(summary.reshape(frames_total, 1, dim)))
            extra_kv.append((k, v))
        x = x + self.attn(self.norm1(x), extra_kv)
        return x + self.mlp(self.norm2(x))


class TextPromptLearner(nn.Module):
    """Learned text context (CoOp): builds prompt embeddings [C, L, W] for the text tower.

    `ctx` is generic [M, W] or class-specific [C, M, W] (CSC); with `init_words`, M is the number
    of words and ctx starts as their token embeddings (generic). `token_prefix` (SOT) and
    `token_suffix` (class name, ".", EOT, padding) are embeddings of the template
    "<ctx words> <class name>." taken from the loaded CLIP token table.
    """

    def __init__(self, class_names: Sequence[str], token_embedding: nn.Embedding,
                 num_prompts: int = 8, init_words: str = "", csc: bool = False,
                 position: str = "end", context_length: int = 77):
        super().__init__()
        if position not in ("front", "middle", "end"):
            raise ValueError(f"text prompt position must be front, middle or end, got {position!r}")
        if not class_names:
            raise ValueError("the text prompt learner needs at least one class name")
        width = token_embedding.weight.shape[1]
        self.class_names = [str(n) for n in class_names]
        self.n_cls = len(class_names)
        self.init_words = init_words.replace("_", " ") if init_words else ""
        self.n_ctx = len(self.init_words.split(" ")) if self.init_words else num_prompts
        self.csc = bool(csc) and not self.init_words
        self.position = position
        self.context_length = context_length
        if self.init_words:
            ctx = self._init_word_embeddings(token_embedding)
        else:
            shape = (self.n_cls, self.n_ctx, width) if self.csc else (self.n_ctx, width)
            ctx = torch.empty(shape, device=token_embedding.weight.device)
            nn.init.normal_(ctx, std=0.02)
        self.ctx = nn.Parameter(ctx)
        tokens = self.template_tokens(self.class_names)
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        self.text_length = tk.text_length(tokens)  # the text tower's cut, fixed with the tokens
        self.name_lens = [len(tk.encode(tk.clean_class_name(n))) for n in self.class_names]
        embedding = self._embed(token_embedding, tokens)
        self.register_buffer("token_prefix", embedding[:, :1].clone())
        self.register_buffer("token_suffix", embedding[:, 1 + self.n_ctx:].clone())

    def template_tokens(self, class_names: Sequence[str]) -> torch.Tensor:
        """Token ids of "<ctx words> <class name>." for each class (the 'end' layout)."""
        prefix = tk.prompt_prefix_words(self.n_ctx, self.init_words)
        texts = [f"{prefix} {tk.clean_class_name(n)}." for n in class_names]
        return tk.tokenize(texts, self.context_length)

    def _init_word_embeddings(self, token_embedding: nn.Embedding) -> torch.Tensor:
        ids = tk.tokenize(self.init_words, self.context_length)
        return self._embed(token_embedding, ids)[0, 1:1 + self.n_ctx].clone()

    @staticmethod
    def _embed(token_embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return token_embedding(tokens.to(token_embedding.weight.device)).detach()

    @torch.no_grad()
    def refresh_embeddings(self, token_embedding: nn.Embedding, reset_init_words: bool = True):
        """Recompute prefix/suffix (and a word-initialised ctx) after new CLIP weights load."""
        embedding = self._embed(token_embedding, self.tokenized_prompts).to(self.token_prefix)
        self.token_prefix.copy_(embedding[:, :1])
        self.token_suffix.copy_(embedding[:, 1 + self.n_ctx:])
        if self.init_words and reset_init_words:
            self.ctx.copy_(self._init_word_embeddings(token_embedding))

    def forward(self) -> torch.Tensor:
        return self.build(self.ctx, self.token_prefix, self.token_suffix, self.name_lens)

    def build(self, ctx: torch.Tensor, prefix: torch.Tensor, suffix: torch.Tensor,
              name_lens: List[int]) -> torch.Tensor:
        """Prompt embeddings [C, L, W] from a context and the template embeddings."""
        n_cls = prefix.shape[0]
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(n_cls, -1, -1)
        ctx = ctx.to(prefix.dtype) if ctx.dtype != prefix.dtype else ctx
        if self.position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i in range(n_cls):
            name = suffix[i:i + 1, :name_lens[i]]
            rest = suffix[i:i + 1, name_lens[i]:]
            if self.position == "middle":
                parts = [prefix[i:i + 1], ctx[i:i + 1, :half], name, ctx[i:i + 1, half:], rest]
            else:  # front
                parts = [prefix[i:i + 1], name, ctx[i:i + 1], rest]
            rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows, dim=0)

    def prompts_for(self, class_names: Sequence[str], token_embedding: nn.Embedding):
        """(prompt embeddings, token ids) of new class names with the learned generic context."""
        if self.csc:
            raise ValueError("class-specific context (TEXT_PROMPT_CSC) belongs to the training "
                             "classes and cannot be applied to other class names")
        tokens = self.template_tokens(class_names).to(self.token_prefix.device)
        embedding = self._embed(token_embedding, tokens).to(self.token_prefix.dtype)
        name_lens = [len(tk.encode(tk.clean_class_name(n))) for n in class_names]
        prompts = self.build(self.ctx, embedding[:, :1], embedding[:, 1 + self.n_ctx:], name_lens)
        return prompts, tokens
