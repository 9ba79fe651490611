"""Builders that turn a config into objects."""
from __future__ import annotations

import torch.nn as nn

from .config import VIDEO_FOCALNET_TYPES, ConfigError


def build_model(cfg) -> nn.Module:
    """The model selected by MODEL.TYPE; takes (B, T, C, H, W) video, returns (B, classes) logits."""
    if cfg.MODEL.TYPE in VIDEO_FOCALNET_TYPES:
        import video_focalnet
        return video_focalnet.build_model(cfg)
    if cfg.MODEL.TYPE == "vita_clip":
        import vita_clip
        return vita_clip.build_model(cfg)
    raise ConfigError(f"key MODEL.TYPE: unknown model {cfg.MODEL.TYPE!r}")
