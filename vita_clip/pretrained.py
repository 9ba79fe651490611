"""Vita-CLIP's released weights: the trained Kinetics-400 checkpoint and the CLIP backbones it
starts from (``common.weights.Weights``; the engine's model zoo serves them by name).

Adding a released file is one entry here. The top-1 figure is the one quoted for the released
checkpoint (one view; ../shared/spec/vita-clip.md §8.2).
"""
from __future__ import annotations

from common.weights import Weights, google_drive_url

__all__ = ["RELEASED_WEIGHTS"]

_CONFIG = "configs/vita_clip/k400/vita_clip_b16.yaml"
# OpenAI publishes the file's sha256 as the path segment before its name.
_OPENAI_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"

RELEASED_WEIGHTS = (
    Weights(name="openai_clip_vit_b16", file_name="ViT-B-16.pt",
            urls=("https://openaipublic.azureedge.net/clip/models/"
                  f"{_OPENAI_B16_SHA256}/ViT-B-16.pt",),
            sha256=_OPENAI_B16_SHA256, aliases=("openai:ViT-B/16",),
            what="OpenAI CLIP ViT-B/16 (TorchScript archive); Vita-CLIP's backbone",
            key="MODEL.VITA.BACKBONE_PATH", configs=(_CONFIG,)),
    Weights(name="vita_clip_b16_k400", file_name="vita_clip_b16_k400.pth",
            urls=(google_drive_url("1vxgNg_lmGBRKNiY4VAy-aiCb-GuOAJNZ"),),
            what="Vita-CLIP-B/16 trained on Kinetics-400 (official checkpoint)",
            key="--checkpoint", configs=(_CONFIG,), top1="80.5 (1x1 view)",
            params="186.9 M"),
    Weights(name="vita_clip_backbone", file_name="clip_pretrained.pth",
            urls=(google_drive_url("17xSat9ZqL8p3RjpfTdqjxrBfcwZgZ2OE"),),
            what="the official repo's converted CLIP ViT-B/16 backbone (legacy alternative)",
            key="MODEL.VITA.BACKBONE_PATH", configs=(_CONFIG,)),
)
