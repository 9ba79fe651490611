"""A line-by-line port of the official Vita-CLIP forward (spec vita-clip.md section 1 and the
golden README), kept as the baseline for tests and benchmarks.

It computes exactly what the reference computes, the reference's way: attention by einsum with
a softmax over the key axis, the text tower through nn.MultiheadAttention over all 77 positions
with an additive causal mask, LayerNorm cast to float32 (float64 stays float64, as for the
goldens), the text tower re-run on every forward. Parameter names equal the official ones and
ours, so one state dict loads into both. Input layout here is the reference's (B, C, T, H, W).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vita_clip import tokenizer as tk


class RefQuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class RefLayerNorm(nn.LayerNorm):
    def forward(self, x):
        if x.dtype == torch.float64:  # the goldens' float64 run keeps the input dtype
            return super().forward(x)
        return super().forward(x.type(torch.float32)).type(x.dtype)


class RefAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.num_heads = heads

    def forward(self, q, k, v):
        n, lq, lk = q.size(0), q.size(1), k.size(1)
        q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
        h = self.num_heads
        c = q.size(-1) // h
        q, k, v = q.view(n, lq, h, c), k.view(n, lk, h, c), v.view(n, lk, h, c)
        aff = torch.einsum("nqhc,nkhc->nqkh", q / (c ** 0.5), k).softmax(dim=-2)
        mix = torch.einsum("nqlh,nlhc->nqhc", aff, v)
        return self.out_proj(mix.flatten(-2))


class RefBlock(nn.Module):
    def __init__(self, dim, heads, mlp_factor, use_summary, use_local, num_frames):
        super().__init__()
        self.attn = RefAttention(dim, heads)
        hidden = round(mlp_factor * dim)
        self.mlp = nn.Sequential(OrderedDict([("fc1", nn.Linear(dim, hidden)),
                                              ("act", RefQuickGELU()),
                                              ("dropout", nn.Dropout(0.0)),
                                              ("fc2", nn.Linear(hidden, dim))]))
        self.norm1, self.norm2 = RefLayerNorm(dim), RefLayerNorm(dim)
        self.use_summary, self.use_local = use_summary, use_local
        self.num_frames = num_frames
        if use_summary or use_local:
            self.cls_proj = nn.Linear(dim, dim)
        if use_summary:
            self.summary_ln = RefLayerNorm(dim)
            self.summary_attn_layer = RefAttention(dim, heads)
        if use_local:
            self.local_prompts = nn.Parameter(torch.zeros(1, num_frames, dim))

    def forward(self, x):
        if self.use_summary or self.use_local:
            bt, _, c = x.shape
            t = self.num_frames
            b = bt // t
            cls_proj = self.cls_proj(x[:, 0, :].view(b, t, c))
        if self.use_summary:
            s_norm = self.summary_ln(cls_proj)
            s = cls_proj + self.summary_attn_layer(s_norm, s_norm, s_norm)
            x = torch.cat([x, s.view(bt, 1, c)], dim=1)
        if self.use_local:
            local = self.local_prompts.expand(b, -1, -1) + cls_proj
            local = local.repeat_interleave(repeats=t, dim=0)
            x = torch.cat((x[:, :1, :], local, x[:, 1:, :]), dim=1)
        x_norm = self.norm1(x)
        x = x + self.attn(x_norm, x_norm, x_norm)
        if self.use_summary:
            x = x[:, :-1, :]
        if self.use_local:
            x = torch.cat((x[:, :1, :], x[:, local.shape[1] + 1:, :]), dim=1)
        return x + self.mlp(self.norm2(x))


class RefVisual(nn.Module):
    def __init__(self, kw):
        super().__init__()
        dim, size, patch = kw["feature_dim"], kw["input_size"], kw["patch_size"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, kernel_size=patch[0], stride=patch[0])
        tokens = (size[0] // patch[0]) * (size[1] // patch[1]) + 1
        self.cls_token = nn.Parameter(torch.zeros(dim))
        self.pos_embed = nn.Parameter(torch.zeros(tokens, dim))
        self.time_embed = nn.Parameter(torch.zeros(kw["num_frames"], dim))
        self.blocks = nn.ModuleList([
            RefBlock(dim, kw["num_heads"], kw["mlp_factor"], kw["use_summary_token"],
                     kw["use_local_prompts"], kw["num_frames"]) for _ in range(kw["num_layers"])])
        self.ln_pre, self.ln_post = RefLayerNorm(dim), RefLayerNorm(dim)
        self.proj = nn.Parameter(torch.zeros(dim, kw["embed_dim"]))
        self.use_global = kw["use_global_prompts"]
        self.num_global = kw["num_global_prompts"]
        if self.use_global:
            self.global_prompts = nn.Parameter(
                torch.zeros(kw["num_layers"], self.num_global, dim))

    def forward(self, x):
        b, c, t, h, w = x.size()
        x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.view(1, 1, -1).repeat(x.size(0), 1, 1), x], dim=1)
        x = x + self.pos_embed
        n = x.shape[1]
        x = x.view(b, t, n, -1).permute(0, 2, 1, 3).reshape(b * n, t, -1)
        if t != self.time_embed.size(0):
            table = F.interpolate(self.time_embed.unsqueeze(0).transpose(1, 2), size=t,
                                  mode="nearest").transpose(1, 2).squeeze(0)
            x = x + table
        else:
            x = x + self.time_embed
        x = x.view(b, n, t, -1).permute(0, 2, 1, 3).reshape(b * t, n, -1)
        x = self.ln_pre(x)
        for i, blk in enumerate(self.blocks):
            if self.use_global:
                g = self.global_prompts[i].expand(b * t, -1, -1)
                x = torch.cat((x[:, :1, :], g, x[:, 1:, :]), dim=1)
            x = blk(x)
            if self.use_global:
                x = torch.cat((x[:, :1, :], x[:, self.num_global + 1:, :]), dim=1)
        out = self.ln_post(x[:, 0, :]) @ self.proj
        return out.view(b, t, -1).mean(dim=1)


class RefTextBlock(nn.Module):
    def __init__(self, width, heads, mask):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = RefLayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)),
                                              ("gelu", RefQuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = RefLayerNorm(width)
        self.attn_mask = mask

    def forward(self, x):
        mask = self.attn_mask.to(dtype=x.dtype, device=x.device)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class RefText(nn.Module):
    def __init__(self, kw):
        super().__init__()
        width, length = kw["text_transformer_width"], kw["text_context_length"]
        mask = torch.empty(length, length).fill_(float("-inf")).triu_(1)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            [RefTextBlock(width, kw["text_transformer_heads"], mask)
             for _ in range(kw["text_transformer_layers"])])
        self.token_embedding = nn.Embedding(kw["text_vocab_size"], width)
        self.positional_embedding = nn.Parameter(torch.zeros(length, width))
        self.ln_final = RefLayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, kw["embed_dim"]))

    def forward(self, prompts, tokens):
        x = (prompts + self.positional_embedding).permute(1, 0, 2)
        for blk in self.transformer.resblocks:
            x = blk(x)
        x = self.ln_final(x.permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


class RefPromptLearner(nn.Module):
    def __init__(self, class_names, text, kw):
        super().__init__()
        init = kw["text_prompt_init"]
        n_ctx = kw["text_num_prompts"]
        width = text.ln_final.weight.shape[0]
        if init:
            init = init.replace("_", " ")
            n_ctx = len(init.split(" "))
            ctx = torch.zeros(n_ctx, width)
            prefix_text = init
        else:
            ctx = torch.zeros(len(class_names), n_ctx, width) if kw["text_prompt_CSC"] \
                else torch.zeros(n_ctx, width)
            prefix_text = " ".join(["X"] * n_ctx)
        self.ctx = nn.Parameter(ctx)
        names = [n.replace("_", " ") for n in class_names]
        self.name_lens = [len(tk.encode(n)) for n in names]
        tokens = tk.tokenize([prefix_text + " " + n + "." for n in names])
        with torch.no_grad():
            emb = text.token_embedding(tokens)
        self.register_buffer("token_prefix", emb[:, :1, :])
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx:, :])
        self.n_cls, self.n_ctx, self.tokenized_prompts = len(names), n_ctx, tokens
        self.pos = kw["text_prompt_pos"]

    def forward(self):
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        pre, suf = self.token_prefix, self.token_suffix
        if self.pos == "end":
            return torch.cat([pre, ctx, suf], dim=1)
        rows = []
        for i in range(self.n_cls):
            nl = self.name_lens[i]
            if self.pos == "middle":
                half = self.n_ctx // 2
                rows.append(torch.cat([pre[i:i + 1], ctx[i:i + 1, :half], suf[i:i + 1, :nl],
                                       ctx[i:i + 1, half:], suf[i:i + 1, nl:]], dim=1))
            else:
                rows.append(torch.cat([pre[i:i + 1], suf[i:i + 1, :nl], ctx[i:i + 1],
                                       suf[i:i + 1, nl:]], dim=1))
        return torch.cat(rows, dim=0)


class ReferenceVitaCLIP(nn.Module):
    """The official model's computation; `kw` holds the official constructor arguments."""

    def __init__(self, class_names, kw, zeroshot_text_features=None):
        super().__init__()
        kw = dict(kw)
        kw["input_size"] = tuple(kw["input_size"])
        kw["patch_size"] = tuple(kw["patch_size"])
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        self.visual = RefVisual(kw)
        self.use_text = kw["use_text_prompt_learning"]
        if self.use_text:
            self.textual = RefText(kw)
            self.prompt_learner = RefPromptLearner(class_names, self.textual, kw)
            self.tokenized_prompts = self.prompt_learner.tokenized_prompts
        else:
            self.text_features = zeroshot_text_features
        for name, p in self.visual.named_parameters():
            p.requires_grad = any(k in name for k in ("summary", "local", "global", "time_embed"))
        if self.use_text:
            self.textual.requires_grad_(False)

    def forward(self, x, return_features=False):
        if self.use_text:
            text = self.textual(self.prompt_learner(), self.tokenized_prompts)
            video = self.visual(x)
        else:
            video = self.visual(x)
            text = self.text_features.to(video.device)
        video = video / video.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * video @ text.t()
        return (logits, video, text) if return_features else logits


def reference_kwargs(model) -> dict:
    """Official constructor arguments reconstructed from one of our VitaCLIP models."""
    v = model.visual
    block = v.blocks[0]
    kw = dict(input_size=None, num_frames=v.num_frames, feature_dim=v.feature_dim,
              patch_size=tuple(v.patch_embed.proj.kernel_size), num_heads=block.attn.num_heads,
              num_layers=len(v.blocks), mlp_factor=block.mlp.fc1.out_features / v.feature_dim,
              embed_dim=v.proj.shape[1], use_summary_token=block.use_summary_token,
              use_local_prompts=block.use_local_prompts, use_global_prompts=v.use_global_prompts,
              num_global_prompts=v.num_global_prompts or 8,
              use_text_prompt_learning=model.use_text_prompt_learning,
              text_num_prompts=model.text_prompt_settings["num_prompts"],
              text_prompt_pos=model.text_prompt_settings["position"],
              text_prompt_init=model.text_prompt_settings["init"],
              text_prompt_CSC=model.text_prompt_settings["csc"])
    grid = int(round(math.sqrt(v.pos_embed.shape[0] - 1)))
    kw["input_size"] = (grid * kw["patch_size"][0], grid * kw["patch_size"][1])
    if hasattr(model, "textual"):
        t = model.textual
        kw.update(text_context_length=t.context_length,
                  text_vocab_size=t.token_embedding.num_embeddings,
                  text_transformer_width=t.token_embedding.embedding_dim,
                  text_transformer_heads=t.transformer.resblocks[0].attn.num_heads,
                  text_transformer_layers=len(t.transformer.resblocks))
    return kw


def reference_from_model(model) -> ReferenceVitaCLIP:
    """A reference model holding a copy of `model`'s weights (same names, strict load)."""
    features = getattr(model, "text_features", None)
    ref = ReferenceVitaCLIP(model.class_names, reference_kwargs(model), features)
    ref = ref.to(next(model.parameters()).dtype)
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref
