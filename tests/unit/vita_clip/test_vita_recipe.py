"""Vita-CLIP's released K400 config trains with the official recipe (training/train.py of the
official repository): one AdamW group with weight decay on every trainable tensor, and a fixed
number of optimiser steps with PyTorch's CosineAnnealingLR over them, whatever the dataset size."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from engine.build import (build_model, build_optimizer, build_scheduler, param_groups,
                          total_updates, training_epochs)
from engine.config import load_cfg

REPO = Path(__file__).resolve().parents[3]
RELEASED = str(REPO / "configs/vita_clip/k400/vita_clip_b16.yaml")
TINY = str(REPO / "configs/vita_clip/tiny.yaml")


def test_released_config_states_the_official_recipe():
    cfg = load_cfg(RELEASED)
    assert cfg.TRAIN.TOTAL_STEPS == 30000 and not cfg.TRAIN.OPTIMIZER.SKIP_DECAY
    assert cfg.TRAIN.WEIGHT_DECAY == 0.05 and cfg.TRAIN.BASE_LR == 4e-4
    assert cfg.TRAIN.WARMUP_EPOCHS == 0 and cfg.TRAIN.MIN_LR == 0 and not cfg.TRAIN.SCALE_LR
    assert (cfg.DATA.DECODER, cfg.DATA.RESIZE_ROUNDING, cfg.TEST.RESIZE_SCALE) == \
        ("pyav", "floor", 1.0)
    assert (cfg.AUG.TRAIN_RESIZE_SCALE, cfg.AUG.RANDAUG_POSITION,
            cfg.AUG.RANDAUG_INTERPOLATION) == (0.0, "before_crop", "bicubic")
    # the protocols built on it keep their own epoch counts
    few_shot = load_cfg(str(REPO / "configs/vita_clip/few_shot/hmdb51.yaml"))
    assert few_shot.TRAIN.TOTAL_STEPS == 0 and few_shot.TRAIN.EPOCHS == 50
    assert load_cfg(str(REPO / "configs/vita_clip/ssv2/vita_clip_b16.yaml")).TRAIN.TOTAL_STEPS \
        == 30000


def test_one_decay_group_over_every_trainable_tensor():
    recipe = load_cfg(RELEASED)
    cfg = load_cfg(TINY, ["TRAIN.OPTIMIZER.SKIP_DECAY", recipe.TRAIN.OPTIMIZER.SKIP_DECAY,
                          "TRAIN.WEIGHT_DECAY", recipe.TRAIN.WEIGHT_DECAY])
    model = build_model(cfg, [f"class {i}" for i in range(5)])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    groups = param_groups(cfg, model)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.05
    assert set(groups[0]["names"]) == trainable
    # prompts, the text context, time embedding and logit scale are among them (1-D or not)
    assert any("ctx" in n for n in trainable) and any("prompt" in n for n in trainable)
    optimizer = build_optimizer(cfg, model)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05]


@pytest.mark.parametrize("steps_per_epoch", [937, 898])  # 240k or 230k videos, batch 256
def test_step_schedule_is_the_official_cosine(steps_per_epoch):
    cfg = load_cfg(RELEASED)
    total = total_updates(cfg, steps_per_epoch)
    assert total == 30000
    assert training_epochs(cfg, steps_per_epoch) == math.ceil(30000 / steps_per_epoch)
    ours = build_scheduler(cfg, torch.optim.AdamW([torch.zeros(1, requires_grad=True)],
                                                  lr=cfg.TRAIN.BASE_LR), steps_per_epoch)
    official_opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=cfg.TRAIN.BASE_LR)
    official = torch.optim.lr_scheduler.CosineAnnealingLR(official_opt, T_max=30000)
    checked = {0, 1, 2, 937, 7500, 15000, 29000, 29999}
    for t in range(30000):
        if t in checked:
            ours.step_update(t)
            assert ours.optimizer.param_groups[0]["lr"] == pytest.approx(
                official_opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), t
        official_opt.step()
        official.step()
