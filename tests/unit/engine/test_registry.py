"""Adding a model and a dataset layout needs no edit to engine/: a toy model package (written
into a temporary folder, found on sys.path) and a toy layout register themselves, then the
engine's public API trains one step and evaluates them. The registries are restored afterwards.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets
import datasets.layouts as layouts
import engine.registry as registry
from engine.config import ConfigError, load_cfg

REPO = Path(__file__).resolve().parents[3]

TOY_PACKAGE = '''
"""A third model family, outside the repository: what the engine's registry asks of one."""
import torch
import torch.nn as nn
from yacs.config import CfgNode as CN

from common.errors import ConfigValueError


class ToyNet(nn.Module):
    """(B, T, C, H, W) video -> (B, classes): pooled colour, one hidden layer, frame mean."""

    def __init__(self, width, num_classes, in_chans=3):
        super().__init__()
        self.proj = nn.Linear(in_chans, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, video):
        x = self.proj(video.mean(dim=(3, 4))).relu()
        return self.head(x.mean(dim=1))

    def no_weight_decay(self):
        return {"proj.weight"}  # the model names its parameters; the engine names none


class ToyFamily:
    name = "toymodel"
    model_types = ("toy_net",)
    benchmark_names = ("toy_net_small",)

    def __init__(self):
        self.built_with = []  # (class names, EVAL_MODE) of every build, for the test

    def add_config(self, cfg):
        cfg.MODEL.TOY = CN()
        cfg.MODEL.TOY.WIDTH = 8  # hidden width

    def validate(self, cfg):
        if cfg.MODEL.TOY.WIDTH < 1:
            raise ConfigValueError("MODEL.TOY.WIDTH", f"{cfg.MODEL.TOY.WIDTH} must be >= 1; use 8")

    def build(self, cfg, class_names=None):
        self.built_with.append((class_names, bool(cfg.EVAL_MODE)))
        classes = len(class_names) if class_names else cfg.MODEL.NUM_CLASSES
        return ToyNet(cfg.MODEL.TOY.WIDTH, classes)

    def normalization(self, cfg):
        return (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def input_pipeline(self, cfg):
        # its own test geometry: crop the frame as it is, three crops flush with the edges
        return {"DATA.DECODER": "frames", "TEST.RESIZE_SCALE": 1.0, "TEST.THREE_CROP": "edge"}

    def example_input(self, cfg, batch_size=1):
        size = int(cfg.DATA.IMG_SIZE)
        return torch.zeros(batch_size, int(cfg.DATA.NUM_FRAMES), 3, size, size)

    def benchmark_models(self, name, num_frames=4, img_size=16, num_classes=2, batch_size=1,
                         **kwargs):
        return {"model": ToyNet(8, num_classes),
                "input": torch.zeros(batch_size, num_frames, 3, img_size, img_size)}


FAMILY = ToyFamily()
'''
CLASSES = ("dark", "bright")


def _write_toy_package(root: Path) -> None:
    package = root / "toymodel"
    package.mkdir()
    (package / "__init__.py").write_text('"""A toy model package for tests/unit/engine/test_registry.py."""\n')
    (package / "family.py").write_text(textwrap.dedent(TOY_PACKAGE))


def _write_frame_videos(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Folders of 4 JPEG frames, 16 px: label 0 dark, label 1 bright (4 train, 2 val videos)."""
    from PIL import Image

    splits: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for split, count in (("train", 4), ("val", 2)):
        for index in range(count):
            label = index % 2
            folder = root / split / f"video{index}"
            folder.mkdir(parents=True)
            for frame in range(4):
                value = 40 + 160 * label + 5 * frame
                Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(
                    folder / f"{frame:05d}.jpg")
            splits[split].append((str(folder), label))
    return splits


@pytest.fixture
def isolated_registries(monkeypatch):
    """The model and layout registries as copies: whatever a test registers is dropped."""
    registry.model_families()  # the installed families are discovered before the copy
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(registry, "_BY_TYPE", dict(registry._BY_TYPE))
    monkeypatch.setattr(layouts, "LAYOUTS", dict(layouts.LAYOUTS))
    return monkeypatch


def _toy_opts(data: Path, output: Path, **extra) -> list[str]:
    opts = {"MODEL.TYPE": "toy_net", "MODEL.TOY.WIDTH": 4, "MODEL.NUM_CLASSES": 2,
            "DATA.NUM_CLASSES": 2, "DATA.DATASET": "toy_frames", "DATA.DECODER": "frames",
            "DATA.ROOT": str(data), "DATA.NUM_FRAMES": 2, "DATA.IMG_SIZE": 16,
            "DATA.INPUT_SIZE": 16, "DATA.BATCH_SIZE": 2, "DATA.NUM_WORKERS": 0,
            "AUG.MIXUP": 0.0, "AUG.CUTMIX": 0.0, "TRAIN.EPOCHS": 1, "TRAIN.WARMUP_EPOCHS": 0,
            "TEST.NUM_CLIP": 1, "TEST.NUM_CROP": 1, "TEST.BATCH_SIZE": 2, "PRINT_FREQ": 1,
            "OUTPUT": str(output)}
    opts.update(extra)
    return [str(v) for kv in opts.items() for v in kv]


def test_a_third_model_and_a_new_layout_train_and_evaluate(tmp_path, isolated_registries):
    from engine.evaluation import test
    from engine.logging import close_logging
    from engine.trainer import train

    isolated_registries.syspath_prepend(str(tmp_path / "pkgs"))
    (tmp_path / "pkgs").mkdir()
    _write_toy_package(tmp_path / "pkgs")
    from toymodel.family import FAMILY  # noqa: E402 (written just above)

    from engine.contract import Benchmarkable, HasDesigns, ModelFamily
    assert isinstance(FAMILY, ModelFamily) and isinstance(FAMILY, Benchmarkable)
    assert not isinstance(FAMILY, HasDesigns)
    registry.register_model_family(FAMILY)
    videos = _write_frame_videos(tmp_path / "data")
    datasets.register_layout("toy_frames",
                             lambda cfg, split: (videos["train" if split == "train" else "val"],
                                                 list(CLASSES)),
                             default_classes=CLASSES)
    assert "toy_net" in registry.model_types() and "toy_frames" in datasets.layout_names()

    cfg = load_cfg(None, _toy_opts(tmp_path / "data", tmp_path / "run"))
    assert cfg.MODEL.TOY.WIDTH == 4  # the family's key, added by its add_config
    assert tuple(cfg.DATA.MEAN) == (0.5, 0.5, 0.5) and tuple(cfg.DATA.STD) == (0.25,) * 3
    with pytest.raises(ConfigError) as err:  # the family's own validation, with its key
        load_cfg(None, _toy_opts(tmp_path / "data", tmp_path / "x", **{"MODEL.TOY.WIDTH": 0}))
    assert err.value.key == "MODEL.TOY.WIDTH"
    assert str(err.value) == "--opts: key MODEL.TOY.WIDTH: 0 must be >= 1; use 8"
    from engine.build import build_model, param_groups
    groups = param_groups(cfg, build_model(cfg))  # weight decay: what the model names
    assert [(g["names"], g["weight_decay"]) for g in groups] == [
        (["head.weight"], cfg.TRAIN.WEIGHT_DECAY),
        (["proj.weight", "proj.bias", "head.bias"], 0.0)]

    try:
        summary = train(cfg)
        ckpt = torch.load(tmp_path / "run" / "latest.pth", weights_only=True)
        assert summary["iterations"] == 2 and ckpt["iteration"] == 2  # 4 videos, batch 2
        assert set(ckpt["model"]) == {"proj.weight", "proj.bias", "head.weight", "head.bias"}
        assert tuple(ckpt["model"]["head.weight"].shape) == (2, 4)

        result = test(load_cfg(None, _toy_opts(tmp_path / "data", tmp_path / "eval")),
                      str(tmp_path / "run" / "latest.pth"))
    finally:
        close_logging()
    saved = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert saved["model"] == "toy_net" and saved["dataset"] == "toy_frames"
    assert saved["num_videos"] == 2 and saved["top1"] == pytest.approx(result["top1"])
    assert set(saved["per_class_acc"]) == set(CLASSES)
    # evaluation builds without initialisation files (EVAL_MODE), then loads the checkpoint
    assert FAMILY.built_with[-1][1] is True and FAMILY.built_with[0][1] is False
    assert all(names in (None, list(CLASSES)) for names, _ in FAMILY.built_with)

    from engine.flops import config_cost  # FLOPs of a config ask the family for its input
    cost = config_cost(cfg)
    assert cost["params"] == 3 * 4 + 4 + 4 * 2 + 2 and cost["gflops"] > 0

    # nothing in engine/ names the toy package: the registries carried everything
    assert not [p for p in (REPO / "engine").glob("*.py")
                if "toymodel" in p.read_text() or "toy_" in p.read_text()]

    isolated_registries.undo()
    for name in ("toymodel.family", "toymodel"):
        sys.modules.pop(name, None)
    assert "toy_net" not in registry.model_types()
    assert "toy_frames" not in datasets.layout_names()
    assert "TOY" not in load_cfg(None, []).MODEL


def test_a_family_without_a_required_member_is_refused(isolated_registries):
    class Incomplete:
        name, model_types = "incomplete", ("incomplete",)

        def add_config(self, cfg):
            pass

        def build(self, cfg, class_names=None):
            return None

    with pytest.raises(TypeError, match=r"has no 'example_input', 'input_pipeline', "
                                        r"'normalization', 'validate'; see engine/contract.py"):
        registry.register_model_family(Incomplete())
    assert "incomplete" not in registry.model_types()
