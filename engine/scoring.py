"""Scoring a batch of videos from their views: the one function every evaluation and prediction
goes through (engine/evaluation.py, engine/inference.py). It sits below both, so neither
imports the other."""
from __future__ import annotations

import torch
import torch.nn as nn

from .compile import StaticBatch

__all__ = ["view_probabilities"]


@torch.no_grad()
def view_probabilities(net: nn.Module, views: torch.Tensor, device: torch.device,
                       amp: torch.dtype | None = None, static: StaticBatch | None = None,
                       **forward_kwargs) -> torch.Tensor:
    """Per-video probabilities (B, K) on the CPU from views (B, V, T, C, H, W) (or single clips
    (B, T, C, H, W)): softmax of each view's logits, averaged over the V views. One forward
    over the B*V clips (padded by ``static`` to its fixed batch for a compiled model; the padding
    rows are dropped). ``forward_kwargs`` go to the model (``text_features=...``). Every
    evaluation and prediction scores videos through this function."""
    if views.dim() == 5:  # single clips (B,T,C,H,W): one view
        views = views.unsqueeze(1)
    b, v = views.shape[:2]
    clips = views.to(device, non_blocking=True).flatten(0, 1)
    clips, real = static.pad(clips) if static is not None else (clips, clips.shape[0])
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        logits = net(clips, **forward_kwargs)[:real]
    return logits.float().softmax(dim=-1).view(b, v, -1).mean(dim=1).cpu()
