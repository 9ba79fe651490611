"""The tiny test config, defined once: a synthetic set (8 + 4 clips, 4 frames, 32 px) and a
Video-FocalNet or Vita-CLIP of a few thousand parameters; one epoch trains in a second or two on
one CPU core.

A config is a flat dict of dotted keys (``{"DATA.NUM_FRAMES": 4, ...}``) so that a test states
only what it changes and passes it on as a YAML file or as ``--opts`` pairs::

    cfg = tiny_config("focal", tmp_path, {"TRAIN.EPOCHS": 2})
    write_yaml(tmp_path / "tiny.yaml", cfg)      # or: load_cfg(None, as_opts(cfg))
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

# Everything but the model: DATA.ROOT and OUTPUT are filled from the test's folder.
COMMON = {
    "DATA.DATASET": "synthetic", "DATA.NUM_FRAMES": 4, "DATA.IMG_SIZE": 32, "DATA.BATCH_SIZE": 2,
    "DATA.NUM_WORKERS": 0, "DATA.SYNTHETIC.NUM_TRAIN": 8, "DATA.SYNTHETIC.NUM_VAL": 4,
    "DATA.SYNTHETIC.NUM_FRAMES": 4, "DATA.SYNTHETIC.SIZE": 32,
    "AUG.MIXUP": 0.0, "AUG.CUTMIX": 0.0,
    "TRAIN.EPOCHS": 1, "TRAIN.WARMUP_EPOCHS": 0, "TRAIN.BASE_LR": 0.01,
    "TEST.BATCH_SIZE": 2, "PRINT_FREQ": 100,
}

MODELS = {
    "focal": {
        "MODEL.TYPE": "videofocalnet_custom", "MODEL.NUM_CLASSES": 10,
        "MODEL.DROP_PATH_RATE": 0.0, "MODEL.FOCAL.EMBED_DIM": 8, "MODEL.FOCAL.DEPTHS": [1, 1],
        "MODEL.FOCAL.FOCAL_LEVELS": [1, 1], "MODEL.FOCAL.FOCAL_WINDOWS": [3, 3],
    },
    "vita": {
        "MODEL.TYPE": "vita_clip", "MODEL.NUM_CLASSES": 10, "MODEL.LABEL_SMOOTHING": 0.0,
        "MODEL.VITA.FEATURE_DIM": 32, "MODEL.VITA.PATCH_SIZE": [16, 16],
        "MODEL.VITA.NUM_HEADS": 2, "MODEL.VITA.NUM_LAYERS": 2, "MODEL.VITA.EMBED_DIM": 16,
        "MODEL.VITA.NUM_GLOBAL_PROMPTS": 2, "MODEL.VITA.TEXT_CONTEXT_LENGTH": 16,
        "MODEL.VITA.TEXT_TRANSFORMER_WIDTH": 32, "MODEL.VITA.TEXT_TRANSFORMER_HEADS": 2,
        "MODEL.VITA.TEXT_TRANSFORMER_LAYERS": 1, "MODEL.VITA.TEXT_NUM_PROMPTS": 4,
        # the test videos are 4-16 frames long: one frame per segment, not Vita-CLIP's own
        # 16-frame stride (which would repeat the last frame)
        "DATA.SAMPLING": "segment",
    },
}


def tiny_config(model: str, root: Path, changes: dict | None = None, *,
                output: str = "run") -> dict:
    """The tiny config of ``model`` ("focal" or "vita") with DATA.ROOT ``root/syn`` and OUTPUT
    ``root/<output>``, then ``changes`` (dotted key -> value; a value None drops the key)."""
    cfg = {**COMMON, "DATA.ROOT": f"{root}/syn", "OUTPUT": f"{root}/{output}", **MODELS[model]}
    for key, value in (changes or {}).items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


def as_yaml(cfg: dict) -> str:
    """The flat config as nested YAML text."""
    nested: dict = {}
    for key, value in cfg.items():
        *parents, leaf = key.split(".")
        node = nested
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return yaml.safe_dump(nested, sort_keys=False, default_flow_style=None)


def write_yaml(path: Path, cfg: dict, extra: str = "") -> Path:
    """Write the flat config (plus ``extra`` YAML text) to ``path``."""
    path = Path(path)
    path.write_text(as_yaml(cfg) + extra)
    return path


def as_opts(cfg: dict) -> list[str]:
    """The flat config as ``--opts`` pairs: ["DATA.NUM_FRAMES", "4", ...]."""
    return [str(v) for pair in cfg.items() for v in pair]


# The runs that the end-to-end tests launch, kill, resume and run under torchrun: two epochs
# (one of warm-up) on 24 + 5 clips with auto-resume, a Video-FocalNet of width 16; OUTPUT comes
# from each command line.
RUN_CHANGES = {
    "DATA.INPUT_SIZE": 32, "DATA.SYNTHETIC.NUM_TRAIN": 24, "DATA.SYNTHETIC.NUM_VAL": 5,
    "TRAIN.EPOCHS": 2, "TRAIN.WARMUP_EPOCHS": 1, "TRAIN.BASE_LR": 0.05, "TRAIN.WARMUP_LR": 0.001,
    "TRAIN.MIN_LR": 0.0001, "TRAIN.AUTO_RESUME": True, "PRINT_FREQ": 4, "OUTPUT": None,
}
RUN_MODEL_CHANGES = {
    "focal": {"MODEL.TYPE": "videofocalnet_tiny", "MODEL.FOCAL.EMBED_DIM": 16,
              "MODEL.FOCAL.FOCAL_LEVELS": [2, 2]},
    "vita": {"MODEL.VITA.TEXT_PROMPT_CSC": True},
}


def run_config(model: str, root: Path, changes: dict | None = None) -> dict:
    """The end-to-end run config of ``model`` (see RUN_CHANGES) plus ``changes``."""
    return tiny_config(model, root, {**RUN_CHANGES, **RUN_MODEL_CHANGES[model], **(changes or {})})


def focal_run_opts(root: Path, output: str = "out", **changes) -> list[str]:
    """The tiny Video-FocalNet of width 16 as --opts for train(cfg) / test(cfg) in-process: two
    epochs (one of warm-up) on 8 + 5 clips in batches of 4, OUTPUT root/<output>."""
    return as_opts(tiny_config("focal", root, {
        "DATA.INPUT_SIZE": 32, "DATA.BATCH_SIZE": 4, "DATA.SYNTHETIC.NUM_VAL": 5,
        **RUN_MODEL_CHANGES["focal"], "TRAIN.EPOCHS": 2, "TRAIN.WARMUP_EPOCHS": 1,
        "TRAIN.BASE_LR": 1e-3, "PRINT_FREQ": 1, **changes}, output=output))


# The tiny Video-FocalNet that the export tests put on top of a design config of
# configs/ablations/ (tests/unit/engine/test_export.py, tests/e2e/test_gpu.py): --opts pairs.
EXPORT_FOCAL_OPTS = ["MODEL.TYPE", "videofocalnet_custom", "MODEL.FOCAL.EMBED_DIM", "8",
                     "MODEL.FOCAL.DEPTHS", "[1, 1]", "MODEL.FOCAL.FOCAL_LEVELS", "[2, 2]",
                     "MODEL.FOCAL.FOCAL_WINDOWS", "[3, 3]", "DATA.NUM_FRAMES", "4",
                     "DATA.IMG_SIZE", "32", "DATA.DATASET", "synthetic", "DATA.LABEL_LIST", "",
                     "MODEL.NUM_CLASSES", "10", "DATA.NUM_CLASSES", "10",
                     "TRAIN.PRETRAINED_PATH", ""]


def child_env(**extra: str) -> dict:
    """The environment for a tool run as a child process: no process-group variables of an
    outer launcher (torchrun sets its own)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env
