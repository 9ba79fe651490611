"""What the engine needs to know about Video-FocalNet (``engine/registry.py`` describes it).

The engine finds ``FAMILY`` through the ``video_recognition.models`` entry point in setup.py and
never names this package itself.
"""
from __future__ import annotations

import torch

from .model import VARIANTS, build_model
from .pretrained import set_weights_locator

__all__ = ["FAMILY", "VideoFocalNetFamily"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VideoFocalNetFamily:
    name = "video_focalnet"
    # official names first, timm-style aliases, then the free-size type the demo uses
    model_types = tuple(f"videofocalnet_{v}" for v in VARIANTS) + \
        tuple(f"video_focalnet_{v}" for v in VARIANTS) + ("videofocalnet_custom",)
    benchmark_names = tuple(f"video_focalnet_{v}" for v in VARIANTS)
    # Weights keys the engine resolves (model-zoo names -> files) before build(); see engine/zoo.py
    weight_keys = ("TRAIN.PRETRAINED_PATH",)
    # The engine's zoo hands its fetch function here for timm pretrained=True (pretrained.py)
    set_weights_locator = staticmethod(set_weights_locator)

    def add_config(self, cfg) -> None:
        """MODEL.FOCAL lives in engine/config.py for now (moved here by the redesign)."""

    def validate(self, cfg) -> None:
        """Checks live in engine/config.py for now (moved here by the redesign)."""

    def build(self, cfg, class_names=None):
        return build_model(cfg)

    def normalization(self, cfg):
        return IMAGENET_MEAN, IMAGENET_STD

    def example_input(self, cfg, batch_size: int = 1) -> torch.Tensor:
        size = int(cfg.DATA.IMG_SIZE)
        return torch.randn(batch_size, int(cfg.DATA.NUM_FRAMES), int(cfg.MODEL.FOCAL.IN_CHANS),
                           size, size)


FAMILY = VideoFocalNetFamily()
