"""Validation of a merged config: the common checks, then the checks of the model family that
owns MODEL.TYPE; every error names the file, override or ablation variant that set the value.
"""
from __future__ import annotations

import difflib
from importlib import metadata

from yacs.config import CfgNode as CN

from common.errors import ConfigError, ConfigValueError

from .config_defaults import COMPILE_MODES
from .config_merge import DISTRIBUTION, where

__all__ = ["validate_cfg", "data_package"]


def data_package():
    """The project's ``datasets`` package, or a clear error when the importable ``datasets`` is
    another distribution's (Hugging Face's shares the name)."""
    import datasets
    if getattr(datasets, "DISTRIBUTION", None) != DISTRIBUTION:
        try:
            other = f"{metadata.version('datasets')} "
        except metadata.PackageNotFoundError:
            other = ""
        raise ConfigError(
            f"`import datasets` found {getattr(datasets, '__file__', datasets)!r}, which is not "
            f"the data package of {DISTRIBUTION} (Hugging Face's `datasets` {other}has the same "
            f"top-level name). Install {DISTRIBUTION} in a virtual environment without "
            f"Hugging Face datasets (`pip uninstall datasets` there, then reinstall this project).")
    return datasets


class _Source(str):
    """The source of a config (a file path, or "" for defaults) that knows, per key, which
    file or override set it: ``where(source, key)`` names that one."""

    def __new__(cls, source: str, origins: dict | None = None):
        self = super().__new__(cls, source)
        self.origins = origins or {}
        return self

    def of(self, key: str) -> str:
        return self.origins.get(key, str(self))


def _origin(source, key: str) -> str:
    return source.of(key) if isinstance(source, _Source) else source


def _require(cond: bool, source: str, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{where(_origin(source, key), key)}: {message}")


def _choice(cfg_value, choices, source, key):
    if cfg_value not in choices:
        close = difflib.get_close_matches(str(cfg_value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where(_origin(source, key), key)}: unknown value {cfg_value!r}; "
                          f"choose one of {', '.join(choices)}.{hint}")


def validate_cfg(cfg: CN, source: str = "", origins: dict | None = None) -> None:
    """Range and consistency checks; raises ConfigError naming the key and the fix, prefixed
    with the file or override (``origins``: key -> source, from load_cfg) the value came from."""
    from .registry import model_family, model_types
    source = _Source(source, origins)
    _choice(cfg.MODEL.TYPE, model_types(), source, "MODEL.TYPE")
    _choice(cfg.DATA.DATASET, data_package().layout_names(), source, "DATA.DATASET")
    _choice(cfg.DATA.DECODER, ("decord", "pyav", "frames"), source, "DATA.DECODER")
    _choice(cfg.DATA.SAMPLING, ("segment", "dense"), source, "DATA.SAMPLING")
    transforms = data_package().transforms  # the operations the pipeline keys choose from
    _choice(cfg.DATA.RESIZE_ROUNDING, transforms.RESIZE_ROUNDINGS, source, "DATA.RESIZE_ROUNDING")
    _choice(cfg.TEST.THREE_CROP, transforms.THREE_CROP_LAYOUTS, source, "TEST.THREE_CROP")
    _choice(cfg.AUG.RANDAUG_POSITION, transforms.RANDAUG_POSITIONS, source,
            "AUG.RANDAUG_POSITION")
    _choice(cfg.AUG.RANDAUG_INTERPOLATION, transforms.RANDAUG_INTERPOLATIONS, source,
            "AUG.RANDAUG_INTERPOLATION")
    _choice(str(cfg.TRAIN.AMP), ("off", "fp16", "bf16"), source, "TRAIN.AMP")
    for key in ("TRAIN.COMPILE", "TEST.COMPILE"):
        section, name = key.split(".")
        _choice(cfg[section][name], COMPILE_MODES, source, key)
    _choice(cfg.TRAIN.NAN_POLICY, ("stop", "skip"), source, "TRAIN.NAN_POLICY")
    _choice(cfg.TRAIN.OPTIMIZER.NAME.lower(), ("adamw", "sgd"), source, "TRAIN.OPTIMIZER.NAME")
    _choice(cfg.TRAIN.LR_SCHEDULER.NAME, ("cosine", "linear", "step"), source,
            "TRAIN.LR_SCHEDULER.NAME")
    _choice(cfg.DIST.BACKEND, ("auto", "nccl", "gloo"), source, "DIST.BACKEND")
    _choice(cfg.DIST.DEVICE, ("auto", "cuda", "cpu"), source, "DIST.DEVICE")
    _choice(cfg.TEST.BAD_VIDEO_POLICY, ("exclude", "fail"), source, "TEST.BAD_VIDEO_POLICY")

    positive = ["DATA.NUM_FRAMES", "DATA.BATCH_SIZE", "DATA.IMG_SIZE", "DATA.INPUT_SIZE",
                "MODEL.TUBELET_SIZE", "TEST.NUM_CLIP", "TEST.BATCH_SIZE", "SAVE_FREQ",
                "PRINT_FREQ", "DATA.FRAME_INTERVAL", "AUG.FRAME_INTERVAL", "TRAIN.EVAL_FREQ"]
    for key in positive:
        value = cfg
        for part in key.split("."):
            value = value[part]
        _require(value > 0, source, key, f"must be a positive number, got {value}")
    _require(cfg.DATA.NUM_WORKERS >= 0, source, "DATA.NUM_WORKERS", "must be >= 0")
    _require(cfg.MODEL.NUM_CLASSES >= 0, source, "MODEL.NUM_CLASSES", "must be >= 0")
    _require(cfg.TRAIN.EPOCHS >= 0, source, "TRAIN.EPOCHS", "must be >= 0")
    _require(cfg.TRAIN.TOTAL_STEPS >= 0, source, "TRAIN.TOTAL_STEPS",
             "must be 0 (epoch-based: TRAIN.EPOCHS) or a number of optimiser updates")
    synthetic = cfg.DATA.SYNTHETIC
    for name, low in (("NUM_TRAIN", 1), ("NUM_VAL", 1), ("NUM_FRAMES", 1), ("SIZE", 8)):
        _require(synthetic[name] >= low, source, f"DATA.SYNTHETIC.{name}",
                 f"must be at least {low}, got {synthetic[name]}")
    _require(synthetic.SIZE % 2 == 0, source, "DATA.SYNTHETIC.SIZE",
             f"must be even (H.264 yuv420p), got {synthetic.SIZE}")
    _require(cfg.TRAIN.ACCUMULATION_STEPS >= 0, source, "TRAIN.ACCUMULATION_STEPS", "must be >= 0")
    _require(cfg.TEST.RESIZE_SCALE >= 1.0, source, "TEST.RESIZE_SCALE",
             f"must be at least 1 (the centre crop needs a short side of at least DATA.INPUT_SIZE),"
             f" got {cfg.TEST.RESIZE_SCALE}")
    _require(cfg.AUG.TRAIN_RESIZE_SCALE >= 0, source, "AUG.TRAIN_RESIZE_SCALE",
             f"must be 0 (no resize) or positive, got {cfg.AUG.TRAIN_RESIZE_SCALE}")
    _require(cfg.TEST.NUM_CROP in (1, 3), source, "TEST.NUM_CROP",
             f"must be 1 (centre crop) or 3 (three crops), got {cfg.TEST.NUM_CROP}")
    _require(cfg.DATA.SPLIT in (1, 2, 3), source, "DATA.SPLIT", "must be 1, 2 or 3")
    for key in ("MODEL.DROP_PATH_RATE", "MODEL.DROP_RATE", "AUG.FLIP_RATIO", "AUG.COLOR_JITTER",
                "AUG.GRAY_SCALE", "AUG.REPROB", "AUG.MIXUP_PROB", "AUG.MIXUP_SWITCH_PROB",
                "AUG.LABEL_SMOOTH", "MODEL.LABEL_SMOOTHING", "DATA.MAX_BAD_FRACTION"):
        section, name = key.split(".")
        value = cfg[section][name]
        _require(0.0 <= value <= 1.0, source, key, f"must lie in [0, 1], got {value}")
    for key in ("DATA.MEAN", "DATA.STD"):
        value = cfg.DATA[key.split(".")[1]]
        _require(len(value) in (0, 3), source, key, "give 3 values (RGB) or leave empty")

    try:
        model_family(cfg.MODEL.TYPE).validate(cfg)
    except ConfigValueError as err:  # the family names the key; add where the value came from
        origin = _origin(source, err.key)
        raise ConfigError(f"{origin}: {err}" if origin else str(err), key=err.key) from None
    except ValueError as err:  # a check that names no key: the file or --opts as a whole
        origin = str(source)
        raise ConfigError(f"{origin}: {err}" if origin else str(err)) from None

