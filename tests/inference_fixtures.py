"""Tiny trained checkpoints and generated videos for the tests of the inference tools
(predict, extract_features, analyze, visualize).

``trained(base, "focal" | "vita")`` trains a tiny Video-FocalNet (parallel design) or a tiny
Vita-CLIP once on a small synthetic set through ``tools/train.py`` and returns its config and
checkpoint; later calls with the same ``base`` (the session's temporary folder) reuse it, so the
test modules share one training run per model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

COMMON = """
DATA:
  DATASET: synthetic
  ROOT: {root}/syn
  NUM_FRAMES: 4
  IMG_SIZE: 32
  INPUT_SIZE: 32
  BATCH_SIZE: 4
  NUM_WORKERS: 0
  SYNTHETIC:
    NUM_TRAIN: 20
    NUM_VAL: 6
    NUM_FRAMES: 16
    SIZE: 32
AUG:
  MIXUP: 0.0
  CUTMIX: 0.0
  FLIP_RATIO: 0.0
TRAIN:
  EPOCHS: 1
  WARMUP_EPOCHS: 0
  BASE_LR: 0.002
  SCALE_LR: False
TEST:
  NUM_CLIP: 2
  NUM_CROP: 3
  BATCH_SIZE: 1
PRINT_FREQ: 100
OUTPUT: {root}/{name}
"""

MODELS = {
    "focal": """
MODEL:
  TYPE: videofocalnet_custom
  NUM_CLASSES: 10
  DROP_PATH_RATE: 0.0
  FOCAL:
    EMBED_DIM: 8
    DEPTHS: [1, 1]
    FOCAL_LEVELS: [2, 2]
    FOCAL_WINDOWS: [3, 3]
    ST_DESIGN: parallel
""",
    "vita": """
MODEL:
  TYPE: vita_clip
  NUM_CLASSES: 10
  LABEL_SMOOTHING: 0.0
  VITA:
    FEATURE_DIM: 32
    PATCH_SIZE: [16, 16]
    NUM_HEADS: 2
    NUM_LAYERS: 2
    EMBED_DIM: 16
    USE_SUMMARY_TOKEN: True
    USE_LOCAL_PROMPTS: True
    USE_GLOBAL_PROMPTS: True
    NUM_GLOBAL_PROMPTS: 2
    USE_TEXT_PROMPT_LEARNING: True
    TEXT_CONTEXT_LENGTH: 16
    TEXT_TRANSFORMER_WIDTH: 32
    TEXT_TRANSFORMER_HEADS: 2
    TEXT_TRANSFORMER_LAYERS: 1
    TEXT_NUM_PROMPTS: 4
    TEXT_PROMPT_CSC: False
""",
}


@dataclass
class Trained:
    cfg: Path  # the config file it was trained with
    checkpoint: Path
    data: Path  # the synthetic set (videos/val/*.mp4, val.csv)

    @property
    def val_videos(self) -> list[Path]:
        return sorted((self.data / "videos" / "val").glob("*.mp4"))


def trained(base: Path, name: str) -> Trained:
    """Train (or reuse) the tiny model ``name`` under ``base/trained``."""
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    from tools.train import main as train_main
    root = Path(base) / "trained"
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / f"{name}.yaml"
    checkpoint = root / name / "latest.pth"
    done = root / f"{name}.done"
    if not done.exists():
        cfg.write_text(COMMON.format(root=root, name=name) + MODELS[name])
        ensure_synthetic(str(root / "syn"), synthetic_settings(20, 6, 16, 32, 0))
        assert train_main(["--cfg", str(cfg)]) == 0
        assert checkpoint.is_file()
        done.write_text(json.dumps({"checkpoint": str(checkpoint)}))
    return Trained(cfg, checkpoint, root / "syn")


def long_video(path: Path, labels=(1, 4, 0), seed: int = 3, size: int = 32) -> Path:
    """An mp4 made of one 16-frame synthetic clip per label, one after the other (25 fps)."""
    from datasets.synthetic import draw_params, encode_mp4, render_clip
    rng = np.random.default_rng(seed)
    frames = [render_clip(draw_params(rng, label // 2, size), 16, size, reverse=bool(label % 2))
              for label in labels]
    path.write_bytes(encode_mp4(np.concatenate(frames)))
    return path


# The tiny trained models as session fixtures, for the tests that import them (predict, features,
# visualize): trained once, reused from disk.
@pytest.fixture(scope="session")
def focal(tmp_path_factory):
    return trained(tmp_path_factory.getbasetemp(), "focal")


@pytest.fixture(scope="session")
def vita(tmp_path_factory):
    return trained(tmp_path_factory.getbasetemp(), "vita")
