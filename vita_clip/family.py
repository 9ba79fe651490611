"""What the engine needs to know about Vita-CLIP (``engine/registry.py`` describes it).

The engine finds ``FAMILY`` through the ``video_recognition.models`` entry point in setup.py and
never names this package itself.
"""
from __future__ import annotations

import torch

from .build import build_model

__all__ = ["FAMILY", "VitaCLIPFamily"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class VitaCLIPFamily:
    name = "vita_clip"
    model_types = ("vita_clip",)
    benchmark_names = ("vita_clip_b16",)
    # Weights keys the engine resolves (model-zoo names -> files) before build(); see engine/zoo.py
    weight_keys = ("MODEL.VITA.BACKBONE_PATH",)

    def add_config(self, cfg) -> None:
        """MODEL.VITA lives in engine/config.py for now (moved here by the redesign)."""

    def validate(self, cfg) -> None:
        """Checks live in engine/config.py / vita_clip.build for now."""

    def build(self, cfg, class_names=None):
        return build_model(cfg)

    def normalization(self, cfg):
        return CLIP_MEAN, CLIP_STD

    def example_input(self, cfg, batch_size: int = 1) -> torch.Tensor:
        size = int(cfg.DATA.IMG_SIZE)
        return torch.randn(batch_size, int(cfg.DATA.NUM_FRAMES), 3, size, size)


FAMILY = VitaCLIPFamily()
