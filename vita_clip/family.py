"""What the engine needs to know about Vita-CLIP (``engine/registry.py`` describes it).

The engine finds ``FAMILY`` through the ``video_recognition.models`` entry point in setup.py and
never names this package itself.
"""
from __future__ import annotations

import math

import torch

from .build import BENCHMARK_NAMES, benchmark_models, build_model
from .config import INPUT_PIPELINE, add_vita_config, validate_vita_config
from .pretrained import RELEASED_WEIGHTS

__all__ = ["FAMILY", "VitaCLIPFamily", "CLIP_MEAN", "CLIP_STD"]

# the pixel statistics CLIP was trained with (0..1 RGB)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class VitaCLIPFamily:
    name = "vita_clip"
    model_types = ("vita_clip",)
    benchmark_names = BENCHMARK_NAMES
    # Weights keys the engine resolves (model-zoo names -> files) before build(); see engine/zoo.py
    weight_keys = ("MODEL.VITA.BACKBONE_PATH",)
    # The released files, declared beside the model (pretrained.py); the engine's zoo serves them
    released_weights = RELEASED_WEIGHTS

    def add_config(self, cfg) -> None:
        """Add ``MODEL.VITA`` (vita_clip/config.py)."""
        add_vita_config(cfg)

    def validate(self, cfg) -> None:
        """ConfigValueError("MODEL.VITA.X", ...) for a config the model cannot be built from."""
        validate_vita_config(cfg)

    def build(self, cfg, class_names=None):
        """The model; ``class_names`` are required unless the config uses precomputed zero-shot
        features (MODEL.VITA.ZEROSHOT_EVALUATION without text prompt learning)."""
        return build_model(cfg, class_names)

    def normalization(self, cfg):
        return CLIP_MEAN, CLIP_STD

    def input_pipeline(self, cfg) -> dict:
        """The official pipeline's config values (vita_clip/config.py INPUT_PIPELINE)."""
        return dict(INPUT_PIPELINE)

    def visual_taps(self, model, method: str, stage: int | None = None) -> dict:
        """``gradcam``: ``features`` = the output of vision block ``stage`` (default: the last),
        its patch tokens as maps ``(B*T, h, w, C)`` (the class token dropped). Vita-CLIP has
        no focal modulators."""
        blocks = model.visual.blocks
        stage = len(blocks) - 1 if stage is None else int(stage)
        if not 0 <= stage < len(blocks):
            raise ValueError(f"stage {stage} does not exist: the vision tower has "
                             f"{len(blocks)} blocks (0..{len(blocks) - 1})")
        if method == "gradcam":
            return {"features": (blocks[stage], _patch_maps)}
        if method == "modulator":
            raise ValueError("Vita-CLIP has no focal modulators; use gradcam")
        raise ValueError(f"unknown visualisation {method!r} for Vita-CLIP; use gradcam")

    def example_input(self, cfg, batch_size: int = 1) -> torch.Tensor:
        size = int(cfg.DATA.IMG_SIZE)
        return torch.randn(batch_size, int(cfg.DATA.NUM_FRAMES), 3, size, size)

    def benchmark_models(self, name: str, **kwargs) -> dict:
        """``{"model", "input"}`` for ``vita_clip_b16`` (vita_clip/build.py:benchmark_models)."""
        return benchmark_models(name, **kwargs)


def _patch_maps(output: torch.Tensor) -> torch.Tensor:
    """Block output (B*T, 1 + P, C), class token first -> patch tokens (B*T, side, side, C)."""
    patches = output[:, 1:]
    side = int(round(math.sqrt(patches.shape[1])))
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
    return patches.reshape(output.shape[0], side, side, output.shape[-1])


FAMILY = VitaCLIPFamily()
