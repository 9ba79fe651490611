"""Config -> Vita-CLIP model, and the timm registry entry `vita_clip_b16`.

Each official constructor argument `name` is ``MODEL.VITA.<NAME>`` (upper-cased), except
``input_size`` -> DATA.IMG_SIZE and ``num_frames`` -> DATA.NUM_FRAMES; class names come from
DATA.LABEL_LIST.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from timm.models import register_model

from . import tokenizer as tk
from .model import VitaCLIP

logger = logging.getLogger(__name__)

__all__ = ["build_model", "model_kwargs_from_cfg", "vita_clip_b16", "benchmark_setup",
           "CONSTRUCTOR_ARGS"]

# official constructor arguments that live under MODEL.VITA
CONSTRUCTOR_ARGS = (
    "feature_dim", "patch_size", "num_heads", "num_layers", "mlp_factor", "embed_dim",
    "use_summary_token", "use_local_prompts", "use_global_prompts", "num_global_prompts",
    "use_text_prompt_learning", "text_context_length", "text_vocab_size",
    "text_transformer_width", "text_transformer_heads", "text_transformer_layers",
    "text_num_prompts", "text_prompt_pos", "text_prompt_init", "text_prompt_CSC",
    "zeroshot_evaluation")


def _config_error(message: str):
    try:
        from engine.config import ConfigError
    except ImportError:  # the package also works outside this repository
        ConfigError = ValueError
    return ConfigError(message)


def model_kwargs_from_cfg(cfg) -> dict:
    """VitaCLIP constructor arguments from a config (without class names and weights)."""
    vita = cfg.MODEL.VITA
    kwargs = {name: vita[name.upper()] for name in CONSTRUCTOR_ARGS}
    kwargs["patch_size"] = tuple(int(v) for v in kwargs["patch_size"])
    kwargs["input_size"] = (int(cfg.DATA.IMG_SIZE), int(cfg.DATA.IMG_SIZE))
    kwargs["num_frames"] = int(cfg.DATA.NUM_FRAMES)
    _validate(kwargs)
    return kwargs


def _validate(kw: dict) -> None:
    checks = [
        (kw["feature_dim"] % kw["num_heads"] == 0, "MODEL.VITA.FEATURE_DIM",
         f"{kw['feature_dim']} must be divisible by MODEL.VITA.NUM_HEADS {kw['num_heads']}"),
        (kw["text_transformer_width"] % kw["text_transformer_heads"] == 0,
         "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", f"{kw['text_transformer_width']} must be divisible "
         f"by MODEL.VITA.TEXT_TRANSFORMER_HEADS {kw['text_transformer_heads']}"),
        (all(kw["input_size"][i] % kw["patch_size"][i] == 0 for i in range(2)), "DATA.IMG_SIZE",
         f"{kw['input_size'][0]} must be a multiple of MODEL.VITA.PATCH_SIZE {kw['patch_size']}"),
        (kw["num_global_prompts"] >= 1 or not kw["use_global_prompts"],
         "MODEL.VITA.NUM_GLOBAL_PROMPTS", "must be >= 1 when USE_GLOBAL_PROMPTS is on"),
        (kw["text_num_prompts"] >= 1 or not kw["use_text_prompt_learning"]
         or kw["text_prompt_init"], "MODEL.VITA.TEXT_NUM_PROMPTS", "must be >= 1"),
        (kw["text_prompt_pos"] in ("front", "middle", "end"), "MODEL.VITA.TEXT_PROMPT_POS",
         "must be front, middle or end"),
        (kw["num_layers"] >= 1 and kw["text_transformer_layers"] >= 1, "MODEL.VITA.NUM_LAYERS",
         "both towers need at least one layer"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise _config_error(f"key {key}: {message}")


def build_model(cfg) -> VitaCLIP:
    """The Vita-CLIP model of a config (MODEL.TYPE vita_clip), CLIP weights loaded from
    MODEL.VITA.BACKBONE_PATH when set, frozen as the reference; logs parameter counts."""
    vita = cfg.MODEL.VITA
    kwargs = model_kwargs_from_cfg(cfg)
    precomputed = kwargs["zeroshot_evaluation"] and not kwargs["use_text_prompt_learning"]
    class_names = []
    if cfg.DATA.LABEL_LIST:
        try:
            class_names = tk.read_class_names(cfg.DATA.LABEL_LIST)
        except (OSError, ValueError) as err:
            raise _config_error(f"key DATA.LABEL_LIST: {err}") from err
    elif not precomputed:
        raise _config_error("key DATA.LABEL_LIST: Vita-CLIP builds its classifier from class "
                            "names; give a file with one name per line (or `id,name` CSV)")
    features = None
    if precomputed:
        if not vita.ZEROSHOT_TEXT_FEATURES_PATH:
            raise _config_error("key MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH: needed when "
                                "ZEROSHOT_EVALUATION is on and USE_TEXT_PROMPT_LEARNING is off")
        features = vita.ZEROSHOT_TEXT_FEATURES_PATH
    try:
        model = VitaCLIP(class_names=class_names, backbone=vita.BACKBONE_PATH or None,
                         zeroshot_text_features=features, **kwargs)
    except FileNotFoundError as err:
        raise _config_error(f"key MODEL.VITA.BACKBONE_PATH / ZEROSHOT_TEXT_FEATURES_PATH: "
                            f"{err}") from err
    if not vita.BACKBONE_PATH:
        logger.warning("MODEL.VITA.BACKBONE_PATH is empty: the CLIP towers are randomly "
                       "initialised (fine for tests and benchmarks, not for training)")
    num_classes = model.text_features.shape[0] if precomputed else len(class_names)
    if cfg.MODEL.NUM_CLASSES not in (num_classes, 1000):  # 1000 = untouched default
        logger.warning("MODEL.NUM_CLASSES is %d but the text side has %d classes; the model "
                       "predicts %d classes", cfg.MODEL.NUM_CLASSES, num_classes, num_classes)
    if cfg.TRAIN.USE_CHECKPOINT:
        model.set_grad_checkpointing(True)
    model.text_cache_dir = vita.TEXT_CACHE_DIR or f"{cfg.OUTPUT}/text_cache"
    trainable, total = model.parameter_counts()
    logger.info("Vita-CLIP: %d classes, %s trainable / %s total parameters", num_classes,
                f"{trainable:,}", f"{total:,}")
    print(f"Vita-CLIP parameters: trainable {trainable:,} / total {total:,}")
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
    return VitaCLIP(class_names=names, backbone=backbone_path or None,
                    input_size=(img_size, img_size), num_frames=num_frames, **settings)


def benchmark_setup(num_frames: int = 8, num_classes: int = 400, img_size: int = 224,
                    reference: bool = True, seed: int = 0, **kwargs) -> dict:
    """Models for a speed comparison: {'model': ours, 'reference': line-by-line port of the
    official forward with the same weights (None when tests/reference_vita.py is absent)}."""
    torch.manual_seed(seed)
    model = vita_clip_b16(num_frames=num_frames, num_classes=num_classes, img_size=img_size,
                          **kwargs)
    out = {"model": model, "reference": None}
    if reference:
        try:
            from tests.reference_vita import reference_from_model
        except ImportError:
            logger.warning("tests/reference_vita.py not importable: no reference model")
            return out
        out["reference"] = reference_from_model(model)
    return out
