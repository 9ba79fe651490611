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

from tests.helpers.tiny import tiny_config, write_yaml

# The tiny config, trained on a larger synthetic set (20 + 6 clips of 16 frames) so that the
# inference tools have long enough videos and several views to score.
CHANGES = {
    "DATA.INPUT_SIZE": 32, "DATA.BATCH_SIZE": 4, "DATA.SYNTHETIC.NUM_TRAIN": 20,
    "DATA.SYNTHETIC.NUM_VAL": 6, "DATA.SYNTHETIC.NUM_FRAMES": 16, "AUG.FLIP_RATIO": 0.0,
    "TRAIN.BASE_LR": 0.002, "TRAIN.SCALE_LR": False, "TEST.NUM_CLIP": 2, "TEST.NUM_CROP": 3,
    "TEST.BATCH_SIZE": 1,
}
MODEL_CHANGES = {
    "focal": {"MODEL.FOCAL.FOCAL_LEVELS": [2, 2], "MODEL.FOCAL.ST_DESIGN": "parallel"},
    "vita": {"MODEL.VITA.USE_SUMMARY_TOKEN": True, "MODEL.VITA.USE_LOCAL_PROMPTS": True,
             "MODEL.VITA.USE_GLOBAL_PROMPTS": True, "MODEL.VITA.USE_TEXT_PROMPT_LEARNING": True,
             "MODEL.VITA.TEXT_PROMPT_CSC": False},
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
        write_yaml(cfg, tiny_config(name, root, {**CHANGES, **MODEL_CHANGES[name]}, output=name))
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
