"""Engine builders and metrics: parameter groups, LR scaling and schedule, loss, top-k,
unwrapping and parameter counts."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from engine.build import (amp_dtype, build_criterion, build_grad_scaler, build_optimizer,
                          build_scheduler, count_parameters, param_groups, scaled_learning_rates,
                          unwrap_model, wrap_model)
from engine.config import ConfigError, get_cfg
from engine.distributed import DistInfo, all_gather_objects, all_reduce_mean, init_distributed
from engine.metrics import (classification_metrics, mean_class_accuracy, per_class_accuracy,
                            topk_accuracy)


class TinyNet(nn.Module):
    """Parameters of every kind the grouping rule must sort."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.prompt_tokens = nn.Parameter(torch.zeros(2, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.special = nn.Parameter(torch.zeros(3, 3))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def no_weight_decay(self):
        return {"special", "pos_embed"}  # prompt_tokens not named: decayed (the engine names none)

    def forward(self, x):
        return self.norm(self.fc(x) + self.special.sum() + self.prompt_tokens.sum()
                         + self.pos_embed.sum())


def test_count_parameters_trainable_and_total():
    model = TinyNet()
    # fc 4*3+3, norm 3+3, prompt 8, pos 20, special 9 trainable; frozen 4*4+4
    assert count_parameters(model) == (15 + 6 + 8 + 20 + 9, 15 + 6 + 8 + 20 + 9 + 20)
    shared = nn.Sequential(model.fc, model.fc)  # a tensor used twice counts once
    assert count_parameters(shared) == (15, 15)
    assert count_parameters(nn.DataParallel(model)) == count_parameters(model)


def test_unwrap_model_strips_data_parallel_and_compile_wrappers():
    model = TinyNet()
    assert unwrap_model(model) is model
    assert unwrap_model(nn.DataParallel(model)) is model

    class Compiled(nn.Module):  # what torch.compile returns: the model under _orig_mod
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    assert unwrap_model(nn.DataParallel(Compiled(model))) is model
    assert set(unwrap_model(Compiled(model)).state_dict()) == set(model.state_dict())

    class HasModuleChild(nn.Module):  # a plain submodule named "module" is not a wrapper
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)

    plain = HasModuleChild()
    assert unwrap_model(plain) is plain


def _cfg(**train):
    cfg = get_cfg()
    for key, value in train.items():
        cfg.TRAIN[key] = value
    return cfg


def _names(groups, decay: bool):
    for g in groups:
        if (g["weight_decay"] > 0) == decay:
            return set(g["names"])
    return set()


def test_param_groups_split_decay_and_skip_frozen():
    cfg = _cfg(WEIGHT_DECAY=0.05)
    groups = param_groups(cfg, TinyNet())
    assert _names(groups, True) == {"fc.weight", "prompt_tokens"}
    assert _names(groups, False) == {"fc.bias", "norm.weight", "norm.bias", "pos_embed",
                                     "special"}
    assert not any("frozen" in n for g in groups for n in g["names"])
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]


def test_param_groups_single_group_when_skip_decay_off():
    cfg = _cfg(WEIGHT_DECAY=0.05)
    cfg.TRAIN.OPTIMIZER.SKIP_DECAY = False
    groups = param_groups(cfg, TinyNet())
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.05
    assert len(groups[0]["params"]) == 7  # every trainable tensor, frozen ones excluded


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_optimizer_keeps_no_state_for_frozen_params(name):
    cfg = _cfg(BASE_LR=0.1, SCALE_LR=False)
    cfg.TRAIN.OPTIMIZER.NAME = name
    model = TinyNet()
    opt = build_optimizer(cfg, model)
    if name == "sgd":
        assert isinstance(opt, torch.optim.SGD)
        assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    else:
        assert isinstance(opt, torch.optim.AdamW)
        assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["eps"] == 1e-8
    model(torch.randn(2, 4)).sum().backward()
    before = model.frozen.weight.clone()
    opt.step()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.frozen.weight) not in in_opt and model.frozen.weight not in opt.state
    assert torch.equal(model.frozen.weight, before)
    assert all(g["lr"] == 0.1 for g in opt.param_groups)


def test_no_trainable_parameters_is_a_clear_error():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        param_groups(get_cfg(), model)


def test_linear_lr_scaling_rule():
    cfg = _cfg(BASE_LR=5e-4, WARMUP_LR=5e-7, MIN_LR=5e-6, SCALE_LR=True, ACCUMULATION_STEPS=2)
    cfg.DATA.BATCH_SIZE = 8
    lrs = scaled_learning_rates(cfg, world_size=4)
    factor = 8 * 4 / 512 * 2
    assert lrs["base_lr"] == pytest.approx(5e-4 * factor)
    assert lrs["warmup_lr"] == pytest.approx(5e-7 * factor)
    assert lrs["min_lr"] == pytest.approx(5e-6 * factor)
    cfg.TRAIN.ACCUMULATION_STEPS = 1  # 1 means no accumulation: no extra factor
    assert scaled_learning_rates(cfg, 4)["base_lr"] == pytest.approx(5e-4 * 8 * 4 / 512)
    cfg.TRAIN.SCALE_LR = False
    assert scaled_learning_rates(cfg, 4)["base_lr"] == 5e-4


def _spec_cosine(t, total, warmup, base, warmup_lr, min_lr):
    # spec 4.5, written out independently of engine.build
    if t < warmup:
        return warmup_lr + (base - warmup_lr) * t / warmup
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t / total))


def test_cosine_schedule_matches_reference_formula():
    cfg = _cfg(BASE_LR=1e-3, WARMUP_LR=1e-6, MIN_LR=1e-5, SCALE_LR=False, EPOCHS=30,
               WARMUP_EPOCHS=5)
    opt = build_optimizer(cfg, TinyNet())
    steps = 7
    sched = build_scheduler(cfg, opt, steps_per_epoch=steps)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)  # first value: WARMUP_LR
    total, warmup = 30 * steps, 5 * steps
    for t in (0, 1, 17, warmup - 1, warmup, warmup + 1, 100, total - 1):
        sched.step_update(t)
        expected = _spec_cosine(t, total, warmup, 1e-3, 1e-6, 1e-5)
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(expected, rel=1e-9), t
    # the absolute-step cosine jumps down at the end of warmup (spec 4.5 / quirk 7.1g)
    sched.step_update(warmup)
    assert opt.param_groups[0]["lr"] < 1e-3 * 0.99
    sched.step_update(total + 5)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_scheduler_state_roundtrip_and_other_kinds():
    cfg = _cfg(BASE_LR=1e-2, WARMUP_LR=0.0, MIN_LR=0.0, SCALE_LR=False, EPOCHS=10,
               WARMUP_EPOCHS=0)
    cfg.TRAIN.LR_SCHEDULER.NAME = "linear"
    opt = build_optimizer(cfg, TinyNet())
    sched = build_scheduler(cfg, opt, steps_per_epoch=10)
    sched.step_update(50)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
    cfg.TRAIN.LR_SCHEDULER.NAME = "step"
    cfg.TRAIN.LR_SCHEDULER.DECAY_EPOCHS = 3
    opt = build_optimizer(cfg, TinyNet())
    sched = build_scheduler(cfg, opt, steps_per_epoch=10)
    sched.step_update(31)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.1 ** 1)
    sched.step_update(65)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.1 ** 2)


def test_criterion_label_smoothing_and_mixup():
    cfg = get_cfg()
    cfg.MODEL.LABEL_SMOOTHING = 0.1
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    label = torch.tensor([0])
    logp = logits.log_softmax(-1)
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0].mean())
    assert build_criterion(cfg)(logits, label).item() == pytest.approx(expected.item(), rel=1e-6)
    cfg.MODEL.LABEL_SMOOTHING = 0.0
    assert build_criterion(cfg)(logits, label).item() == pytest.approx(-logp[0, 0].item())
    soft = torch.tensor([[0.5, 0.5, 0.0]])
    mixed = build_criterion(cfg, mixup=object())(logits, soft)
    assert mixed.item() == pytest.approx(-(0.5 * logp[0, 0] + 0.5 * logp[0, 1]).item(), rel=1e-6)


def test_amp_settings():
    cfg = get_cfg()
    assert amp_dtype(cfg) is None
    assert not build_grad_scaler(cfg, torch.device("cpu")).is_enabled()
    cfg.TRAIN.AMP = "bf16"
    assert amp_dtype(cfg) == torch.bfloat16
    assert not build_grad_scaler(cfg, torch.device("cpu")).is_enabled()
    cfg.TRAIN.AMP = "fp16"
    assert amp_dtype(cfg) == torch.float16
    assert build_grad_scaler(cfg, torch.device("cpu")).is_enabled()


def test_single_process_distributed_helpers(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    cfg = get_cfg()
    cfg.DIST.DEVICE = "cpu"
    info = init_distributed(cfg)
    assert (info.rank, info.world_size, info.device.type, info.backend) == (0, 1, "cpu", "")
    assert wrap_model(cfg, nn.Linear(2, 2), info).__class__ is nn.Linear  # no DDP at world 1
    assert all_gather_objects({"a": 1}) == [{"a": 1}]
    assert all_reduce_mean(torch.tensor(3.0)).item() == 3.0
    cfg.DIST.BACKEND = "nccl"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="nccl needs CUDA"):
            init_distributed(cfg)


def test_world_size_without_master_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    cfg = get_cfg()
    cfg.DIST.DEVICE = "cpu"
    with pytest.raises(RuntimeError, match="MASTER_ADDR is not set"):
        init_distributed(cfg)
    assert isinstance(DistInfo(0, 1, 0, torch.device("cpu"), ""), DistInfo)


def test_topk_and_class_metrics_by_hand():
    scores = torch.tensor([[0.7, 0.2, 0.1],   # label 0: top-1 hit
                           [0.5, 0.3, 0.2],   # label 1: top-2 only
                           [0.1, 0.2, 0.7],   # label 2: hit
                           [0.6, 0.3, 0.1]])  # label 2: top-3 only
    labels = torch.tensor([0, 1, 2, 2])
    acc = topk_accuracy(scores, labels, (1, 2, 5))
    assert acc[1] == pytest.approx(50.0) and acc[2] == pytest.approx(75.0)
    assert acc[5] == pytest.approx(100.0)  # k clipped to the number of classes
    per_class = per_class_accuracy(scores, labels, 4)
    assert per_class[:3].tolist() == [100.0, 0.0, 50.0] and math.isnan(per_class[3])
    assert mean_class_accuracy(scores, labels, 4) == pytest.approx(50.0)
    m = classification_metrics(scores, labels, 4)
    assert m["top1"] == pytest.approx(50.0) and m["top5"] == pytest.approx(100.0)
    assert m["per_class_acc"] == [100.0, 0.0, 50.0, None] and m["num_samples"] == 4
