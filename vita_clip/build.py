"""Config + class names -> Vita-CLIP model, the timm registry entry ``vita_clip_b16``, and the
models a speed benchmark compares.

The config keys are described in ``vita_clip/config.py``. Class names are an argument: the
caller reads them (the engine from DATA.LABEL_LIST or the dataset's bundled list).
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import torch
from timm.models import register_model

from common.errors import ConfigValueError
from common.safe_load import CheckpointError, with_prefix

from .config import model_kwargs_from_cfg, uses_precomputed_text
from .model import VitaCLIP, load_text_features
from .weights import BackboneError

logger = logging.getLogger(__name__)

__all__ = ["build_model", "vita_clip_b16", "benchmark_models"]


def build_model(cfg, class_names: Optional[Sequence[str]] = None) -> VitaCLIP:
    """The Vita-CLIP model of a config (MODEL.TYPE vita_clip) for ``class_names``, frozen as the
    reference. CLIP weights come from MODEL.VITA.BACKBONE_PATH when set, unless EVAL_MODE says a
    checkpoint holding every weight is loaded afterwards.

    Raises ConfigValueError(key, ...) for what the config or the names cannot give, and the
    CheckpointError of common.safe_load (the key in front) for a weight file it cannot read.
    """
    kwargs = model_kwargs_from_cfg(cfg)
    vita = cfg.MODEL.VITA
    precomputed = uses_precomputed_text(cfg)
    if not precomputed and not class_names:
        raise ConfigValueError("DATA.LABEL_LIST", "Vita-CLIP builds its classifier from class "
                               "names; give a file with one name per line (or the `id,name` CSV), or use a "
                         "DATA.DATASET with a bundled class list")
    backbone = "" if cfg.EVAL_MODE else vita.BACKBONE_PATH
    features = vita.ZEROSHOT_TEXT_FEATURES_PATH if precomputed else None
    for key, path in (("MODEL.VITA.BACKBONE_PATH", backbone),
                      ("MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH", features)):
        if path and not os.path.isfile(path):
            raise ConfigValueError(key, f"file not found: {path}")
    if features:  # read here so that an unusable file is reported under its own key
        try:
            features = load_text_features(features)
        except CheckpointError as err:
            raise with_prefix(err, "key MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH: ") from err
        except ValueError as err:
            raise ConfigValueError("MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH", str(err)) from err
    try:
        model = VitaCLIP(class_names=class_names or (), backbone=backbone or None,
                         zeroshot_text_features=features, **kwargs)
    except CheckpointError as err:  # unreadable or unsafe: the one wording, the key named
        raise with_prefix(err, "key MODEL.VITA.BACKBONE_PATH: ") from err
    except BackboneError as err:  # weights of another model: name the key
        raise ConfigValueError("MODEL.VITA.BACKBONE_PATH", str(err)) from err
    if cfg.TRAIN.USE_CHECKPOINT:
        model.set_grad_checkpointing(True)
    trainable, total = model.parameter_counts()
    if model.backbone_report is not None:
        weights = model.backbone_report.summary()
    elif cfg.EVAL_MODE:
        weights = "weights to come from a checkpoint"
    else:
        weights = "CLIP towers randomly initialised (MODEL.VITA.BACKBONE_PATH is empty)"
    logger.info("Vita-CLIP: %d classes, %s trainable / %s total parameters; %s",
                model.num_classes, f"{trainable:,}", f"{total:,}", weights)
    return model


def _placeholder_names(num_classes: int) -> list:
    # names of typical Kinetics length (3-5 BPE tokens) for benchmarks without a label file
    return [f"class number {i}" for i in range(num_classes)]


@register_model
def vita_clip_b16(pretrained: bool = False, num_frames: int = 8, num_classes: int = 400,
                  class_names: Optional[Sequence[str]] = None, img_size: int = 224,
                  backbone_path: str = "", **kwargs) -> VitaCLIP:
    """Vita-CLIP ViT-B/16 in the released K400 setting (all prompts, 8 global prompts, 8 CSC
    text context tokens). Random init unless `backbone_path` names a CLIP file; without
    `class_names`, placeholder names for `num_classes` classes."""
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "in_chans",
                "drop_path_rate", "drop_rate"):
        kwargs.pop(key, None)
    if pretrained and not backbone_path:
        raise ValueError("vita_clip_b16: no download source; pass backbone_path= (OpenAI "
                         "ViT-B-16.pt) or load a released checkpoint yourself")
    names = list(class_names) if class_names is not None else _placeholder_names(num_classes)
    settings = dict(feature_dim=768, patch_size=(16, 16), num_heads=12, num_layers=12,
                    mlp_factor=4.0, embed_dim=512, use_summary_token=True,
                    use_local_prompts=True, use_global_prompts=True, num_global_prompts=8,
                    use_text_prompt_learning=True, text_num_prompts=8, text_prompt_CSC=True,
                    text_prompt_pos="end")
    settings.update(kwargs)
    model = VitaCLIP(class_names=names, backbone=backbone_path or None,
                     input_size=(img_size, img_size), num_frames=num_frames, **settings)
    if model.backbone_report is not None:
        logger.info("vita_clip_b16: %s", model.backbone_report.summary())
    return model


BENCHMARK_NAMES = ("vita_clip_b16",)


def benchmark_models(name: str, num_frames: int = 8, num_classes: int = 400, img_size: int = 224,
                     batch_size: int = 1, seed: int = 0, **kwargs) -> dict:
    """``{"model": VitaCLIP, "input": float video (B, T, C, H, W)}`` for a speed comparison.

    Weights are random (seeded); ``kwargs`` go to the variant (e.g. ``use_summary_token=False``).
    The model scores videos against text: time evaluation like the engine's evaluator does,
    ``text = model.encode_text()`` once, then ``model(video, text_features=text)``.
    """
    if name not in BENCHMARK_NAMES:
        raise KeyError(f"unknown Vita-CLIP variant {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    torch.manual_seed(seed)
    model = vita_clip_b16(num_frames=num_frames, num_classes=num_classes, img_size=img_size,
                          **kwargs)
    video = torch.randn(batch_size, num_frames, 3, img_size, img_size)
    return {"model": model, "input": video}
