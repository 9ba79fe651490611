"""Vita-CLIP's config keys (``MODEL.VITA``), their checks, and config -> constructor arguments.

Each official ``VitaCLIP.__init__`` argument ``name`` is ``MODEL.VITA.<NAME>`` (upper-cased),
except ``input_size`` -> ``DATA.IMG_SIZE`` and ``num_frames`` -> ``DATA.NUM_FRAMES``. Class names
are not a config key here: the caller passes them to the builder.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN

from common.errors import ConfigValueError

__all__ = ["add_vita_config", "validate_vita_config", "model_kwargs_from_cfg",
           "uses_precomputed_text", "CONSTRUCTOR_ARGS", "PROMPT_POSITIONS", "INPUT_PIPELINE"]

# The official input pipeline (TalalWasim/Vita-CLIP, video_dataset/dataset.py and dataloader.py
# with train_scripts/k400_train.sh), as config values; engine.config fills them where a config
# is silent.
INPUT_PIPELINE = {
    "DATA.DECODER": "pyav",  # av.open + decode every frame, keyed by pts, dataset.py:56-61
    "DATA.SAMPLING": "dense",  # strided clips: test dataset.py:113-128, train 155-168
    "DATA.FRAME_INTERVAL": 16,  # --sampling_rate default, dataloader.py:32
    "DATA.RESIZE_ROUNDING": "floor",  # W * 224 // H, dataset.py:94-99
    "AUG.TRAIN_RESIZE_SCALE": 0.0,  # random_resized_crop on the decoded frame, dataset.py:80-84
    "AUG.RANDAUG_POSITION": "before_crop",  # RandAugment on whole frames first, dataset.py:68-78
    "AUG.RANDAUG_INTERPOLATION": "bicubic",  # --interpolation default, dataloader.py:49
    "TEST.RESIZE_SCALE": 1.0,  # short side 224, then the centre crop, dataset.py:94-103, 131-137
    "TEST.THREE_CROP": "slowfast",  # crops at 0, m // 2, m along the long side, dataset.py:139-149
}

PROMPT_POSITIONS = ("front", "middle", "end")

# official constructor arguments that live under MODEL.VITA
CONSTRUCTOR_ARGS = (
    "feature_dim", "patch_size", "num_heads", "num_layers", "mlp_factor", "embed_dim",
    "use_summary_token", "use_local_prompts", "use_global_prompts", "num_global_prompts",
    "use_text_prompt_learning", "text_context_length", "text_vocab_size",
    "text_transformer_width", "text_transformer_heads", "text_transformer_layers",
    "text_num_prompts", "text_prompt_pos", "text_prompt_init", "text_prompt_CSC",
    "zeroshot_evaluation")


def add_vita_config(cfg: CN) -> None:
    """Add ``MODEL.VITA`` with its defaults (the official constructor's, released K400 notes)."""
    vita = CN()
    vita.BACKBONE_PATH = ""  # OpenAI CLIP file (ViT-B-16.pt TorchScript or a state dict)
    vita.FEATURE_DIM = 768  # vision width
    vita.PATCH_SIZE = [16, 16]  # vision patch size
    vita.NUM_HEADS = 12  # vision attention heads
    vita.NUM_LAYERS = 12  # vision blocks
    vita.MLP_FACTOR = 4.0  # vision MLP ratio
    vita.EMBED_DIM = 512  # joint video-text embedding width
    vita.USE_SUMMARY_TOKEN = True  # per-frame summary token built from all frames' cls tokens
    vita.USE_LOCAL_PROMPTS = True  # frame-level prompts conditioned on cls tokens
    vita.USE_GLOBAL_PROMPTS = True  # video-level learned prompts, a fresh set per layer
    vita.NUM_GLOBAL_PROMPTS = 8  # global prompts per layer
    vita.USE_TEXT_PROMPT_LEARNING = True  # learned CoOp context in the text prompts
    vita.TEXT_CONTEXT_LENGTH = 77  # text tokens
    vita.TEXT_VOCAB_SIZE = 49408  # BPE vocabulary
    vita.TEXT_TRANSFORMER_WIDTH = 512  # text width
    vita.TEXT_TRANSFORMER_HEADS = 8  # text heads
    vita.TEXT_TRANSFORMER_LAYERS = 12  # text blocks
    vita.TEXT_NUM_PROMPTS = 8  # learned text context tokens
    vita.TEXT_PROMPT_POS = "end"  # front | middle | end: where the class name goes
    vita.TEXT_PROMPT_INIT = ""  # words to initialise the context from ("" = random)
    vita.TEXT_PROMPT_CSC = False  # class-specific context (released K400 model: True)
    vita.ZEROSHOT_EVALUATION = False  # use precomputed text features instead of the text tower
    vita.ZEROSHOT_TEXT_FEATURES_PATH = ""  # (C, EMBED_DIM) tensor file for zero-shot mode
    vita.TEXT_CACHE_DIR = ""  # zero-shot workflow's text-feature cache ("" = OUTPUT/text_cache)
    cfg.MODEL.VITA = vita


def uses_precomputed_text(cfg) -> bool:
    """The official zero-shot path: no text tower, features read from a file."""
    return bool(cfg.MODEL.VITA.ZEROSHOT_EVALUATION and not cfg.MODEL.VITA.USE_TEXT_PROMPT_LEARNING)


def validate_vita_config(cfg) -> None:
    """Raise ConfigValueError("MODEL.VITA.X", "what is wrong; what to do") for a config the model
    cannot be built from (the engine adds where the value came from)."""
    v = cfg.MODEL.VITA
    patch = list(v.PATCH_SIZE)
    checks = [
        (v.TEXT_PROMPT_POS in PROMPT_POSITIONS, "MODEL.VITA.TEXT_PROMPT_POS",
         f"unknown value {v.TEXT_PROMPT_POS!r}; choose one of {', '.join(PROMPT_POSITIONS)}"),
        (len(patch) == 2 and all(p > 0 for p in patch), "MODEL.VITA.PATCH_SIZE",
         f"give two positive sizes [height, width], got {patch}"),
        (v.FEATURE_DIM > 0 and v.NUM_HEADS > 0 and v.FEATURE_DIM % v.NUM_HEADS == 0,
         "MODEL.VITA.FEATURE_DIM", f"{v.FEATURE_DIM} must be divisible by MODEL.VITA.NUM_HEADS "
         f"{v.NUM_HEADS}"),
        (v.TEXT_TRANSFORMER_HEADS > 0 and v.TEXT_TRANSFORMER_WIDTH % v.TEXT_TRANSFORMER_HEADS == 0,
         "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", f"{v.TEXT_TRANSFORMER_WIDTH} must be divisible by "
         f"MODEL.VITA.TEXT_TRANSFORMER_HEADS {v.TEXT_TRANSFORMER_HEADS}"),
        (len(patch) != 2 or all(p <= 0 or cfg.DATA.IMG_SIZE % p == 0 for p in patch),
         "DATA.IMG_SIZE", f"{cfg.DATA.IMG_SIZE} must be a multiple of MODEL.VITA.PATCH_SIZE "
         f"{patch}"),
        (v.NUM_GLOBAL_PROMPTS >= 1 or not v.USE_GLOBAL_PROMPTS, "MODEL.VITA.NUM_GLOBAL_PROMPTS",
         "must be >= 1 when USE_GLOBAL_PROMPTS is on"),
        (v.TEXT_NUM_PROMPTS >= 1 or not v.USE_TEXT_PROMPT_LEARNING or v.TEXT_PROMPT_INIT,
         "MODEL.VITA.TEXT_NUM_PROMPTS", "must be >= 1 (or give TEXT_PROMPT_INIT words)"),
        (v.NUM_LAYERS >= 1 and v.TEXT_TRANSFORMER_LAYERS >= 1, "MODEL.VITA.NUM_LAYERS",
         "both towers need at least one layer (NUM_LAYERS, TEXT_TRANSFORMER_LAYERS)"),
        (not uses_precomputed_text(cfg) or v.ZEROSHOT_TEXT_FEATURES_PATH,
         "MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH", "needed when ZEROSHOT_EVALUATION is on and "
         "USE_TEXT_PROMPT_LEARNING is off (a [classes, EMBED_DIM] tensor file)"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise ConfigValueError(key, message)


def model_kwargs_from_cfg(cfg) -> dict:
    """VitaCLIP constructor arguments of a config (without class names and weights)."""
    validate_vita_config(cfg)
    vita = cfg.MODEL.VITA
    kwargs = {name: vita[name.upper()] for name in CONSTRUCTOR_ARGS}
    kwargs["patch_size"] = tuple(int(v) for v in kwargs["patch_size"])
    kwargs["input_size"] = (int(cfg.DATA.IMG_SIZE), int(cfg.DATA.IMG_SIZE))
    kwargs["num_frames"] = int(cfg.DATA.NUM_FRAMES)
    return kwargs
