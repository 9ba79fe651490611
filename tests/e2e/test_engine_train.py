"""train_one_epoch / evaluate on stand-in models, and train()/test() in one process."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.build import build_grad_scaler, build_optimizer, build_scheduler
from engine.config import get_cfg, load_cfg
from engine.evaluation import evaluate
from engine.logging import close_logging
from engine.trainer import NonFiniteLossError, TrainState, train, train_one_epoch
from tests.helpers.tiny import focal_run_opts as tiny_focal_cfg

T, C, H, W, K = 2, 3, 4, 4, 5


@pytest.fixture(autouse=True)
def _release_log_handlers():
    yield
    close_logging()


def _cfg(**train_keys):
    cfg = get_cfg()
    cfg.TRAIN.BASE_LR = cfg.TRAIN.MIN_LR = 0.1  # constant LR: updates are easy to compare
    cfg.TRAIN.WARMUP_EPOCHS = 0
    cfg.TRAIN.EPOCHS = 1
    cfg.TRAIN.SCALE_LR = False
    cfg.TRAIN.CLIP_GRAD = 0.0
    cfg.TRAIN.OPTIMIZER.NAME = "sgd"
    cfg.TRAIN.WEIGHT_DECAY = 0.0
    cfg.MODEL.LABEL_SMOOTHING = 0.0
    cfg.PRINT_FREQ = 1
    for key, value in train_keys.items():
        cfg.TRAIN[key] = value
    return cfg


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(1), nn.Linear(T * C * H * W, K))


def _data(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, C, H, W, generator=g), torch.randint(0, K, (n,), generator=g)


def _run(cfg, model, batches):
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt, steps_per_epoch=len(batches))
    state = TrainState()
    stats = train_one_epoch(cfg, model, batches, opt, sched, build_grad_scaler(cfg, torch.device(
        "cpu")), nn.CrossEntropyLoss(), torch.device("cpu"), state, show_progress=False)
    return state, stats


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_accumulation_equals_one_big_batch_and_clips_once(clip):
    x, y = _data(4)
    big, small = _net(), _net()
    state_a, _ = _run(_cfg(CLIP_GRAD=clip), big, [(x, y)])
    state_b, _ = _run(_cfg(CLIP_GRAD=clip, ACCUMULATION_STEPS=2), small,
                      [(x[:2], y[:2]), (x[2:], y[2:])])
    assert state_a.iteration == state_b.iteration == 1
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    moved = (big[1].weight - _net()[1].weight).norm().item()
    assert moved > 0
    if clip:  # clipped once on the summed gradient: nesterov's first update is lr * 1.9 * g
        assert moved <= 0.1 * 1.9 * clip * 1.0001


def test_uneven_last_group_still_updates():
    x, y = _data(6)
    state, stats = _run(_cfg(ACCUMULATION_STEPS=4), _net(),
                        [(x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)])
    assert state.iteration == 1 and stats["iterations"] == 3
    state, _ = _run(_cfg(ACCUMULATION_STEPS=2), _net(),
                    [(x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)])
    assert state.iteration == 2  # groups of 2 and 1


class _NaNAt(nn.Module):
    def __init__(self, bad_call: int):
        super().__init__()
        self.net = _net()
        self.calls = 0
        self.bad_call = bad_call

    def forward(self, x):
        out = self.net(x)
        self.calls += 1
        return out * float("nan") if self.calls - 1 == self.bad_call else out


def test_nan_loss_stops_with_epoch_and_iteration():
    x, y = _data(6)
    model = _NaNAt(bad_call=1)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 iteration 1/3.*NAN_POLICY"):
        _run(_cfg(NAN_POLICY="stop"), model, [(x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)])


def test_nan_loss_skip_policy_skips_only_that_update(caplog):
    x, y = _data(6)
    batches = [(x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)]
    skipping = _NaNAt(bad_call=1)
    with caplog.at_level("WARNING"):
        state, stats = _run(_cfg(NAN_POLICY="skip"), skipping, batches)
    assert state.skipped_steps == 1 and stats["skipped_steps"] == 1 and state.iteration == 3
    assert "update skipped" in caplog.text
    clean = _NaNAt(bad_call=-1)
    _run(_cfg(), clean, [batches[0], batches[2]])  # the same updates without the bad batch
    for a, b in zip(skipping.parameters(), clean.parameters()):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b)


class _OOM(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_suggests_config_keys():
    x, y = _data(2)
    with pytest.raises(RuntimeError) as err:
        _run(_cfg(), _OOM(), [(x, y)])
    for key in ("DATA.BATCH_SIZE", "TRAIN.ACCUMULATION_STEPS", "TRAIN.USE_CHECKPOINT",
                "TRAIN.AMP", "DATA.NUM_FRAMES"):
        assert key in str(err.value)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_on_cpu(amp):
    x, y = _data(4)
    model = _net()
    before = model[1].weight.clone()
    state, stats = _run(_cfg(AMP=amp, CLIP_GRAD=1.0), model, [(x[:2], y[:2]), (x[2:], y[2:])])
    assert torch.isfinite(torch.tensor(stats["loss"]))
    assert not torch.equal(before, model[1].weight) and state.iteration == 2


class _ViewModel(nn.Module):
    """Logits = first K values of each clip: per-view scores the test can compute by hand."""

    def forward(self, clips):
        return clips.flatten(1)[:, :K] * 3.0


class _Loader(list):
    def __init__(self, batches, dataset_len):
        super().__init__(batches)
        self.dataset = list(range(dataset_len))


def test_evaluate_averages_softmax_over_views_and_sorts_by_index():
    g = torch.Generator().manual_seed(0)
    views = torch.randn(5, 3, T, C, H, W, generator=g)  # 5 videos x 3 views
    labels = torch.tensor([0, 1, 2, 3, 4])
    order = [3, 0, 4, 1, 2]  # the loader's order is not the dataset order
    batches = [(views[order[:2]], labels[order[:2]], torch.tensor(order[:2])),
               (views[order[2:]], labels[order[2:]], torch.tensor(order[2:]))]
    result = evaluate(_ViewModel(), _Loader(batches, 5), torch.device("cpu"),
                      show_progress=False)
    logits = views.flatten(2)[:, :, :K] * 3.0
    expected = logits.softmax(-1).mean(1)
    torch.testing.assert_close(result["scores"], expected)
    assert result["indices"].tolist() == [0, 1, 2, 3, 4]
    assert result["labels"].tolist() == labels.tolist()
    hits = (expected.argmax(1) == labels).float().mean().item() * 100
    assert result["metrics"]["top1"] == pytest.approx(hits)
    assert result["metrics"]["views"] == 3 and result["metrics"]["num_samples"] == 5
    # averaging probabilities is not averaging logits: make sure the right one was used
    assert not torch.allclose(result["scores"], logits.mean(1).softmax(-1))


def test_evaluate_refuses_duplicates_and_drops():
    views = torch.randn(2, 1, T, C, H, W)
    dup = [(views, torch.tensor([0, 1]), torch.tensor([0, 0]))]
    with pytest.raises(RuntimeError, match="more than once"):
        evaluate(_ViewModel(), _Loader(dup, 2), torch.device("cpu"), show_progress=False)
    short = [(views, torch.tensor([0, 1]), torch.tensor([0, 1]))]
    with pytest.raises(RuntimeError, match="dataset has 3"):
        evaluate(_ViewModel(), _Loader(short, 3), torch.device("cpu"), show_progress=False)


# ---------------------------------------------------------------------------------------------
# train(cfg) / test(cfg, checkpoint) in this process on the real packages
# ---------------------------------------------------------------------------------------------
def test_train_then_test_in_process_writes_every_file(tmp_path):
    from engine.trainer import test as run_test
    cfg = load_cfg(None, tiny_focal_cfg(tmp_path))
    summary = train(cfg)
    out = tmp_path / "out"
    names = set(os.listdir(out))
    assert {"config.yaml", "run_info.json", "log.txt", "metrics.jsonl", "tb", "latest.pth",
            "best.pth", "ckpt_epoch_0.pth", "ckpt_epoch_1.pth"} <= names
    assert not [n for n in names if ".tmp" in n]
    assert (out / "config.yaml").read_text() == cfg.dump()
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 1 and info["device"] == "cpu" and "git_commit" in info
    assert info["torch"] == torch.__version__
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(out / "tb"))
    log = (out / "log.txt").read_text()
    assert "epoch 1 validation: top-1" in log and "bad videos" in log and "lr 1.000e-03" not in log
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "train_iter" for r in records) == 4  # 2 epochs x 8/4 batches
    assert [r["epoch"] for r in records if r["type"] == "val"] == [0, 1]
    ckpt = torch.load(out / "latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 4
    assert ckpt["max_accuracy"] == pytest.approx(summary["max_accuracy"])
    # linear scaling: 1e-3 * 4 * 1 / 512, logged as scaled
    assert f"lr {1e-3 * 4 / 512:.3e}" in log

    test_cfg = load_cfg(None, tiny_focal_cfg(tmp_path, "eval", **{"TEST.NUM_CLIP": 2}))
    result = run_test(test_cfg, str(out / "best.pth"))
    saved = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert saved["num_videos"] == 5 and saved["views"]["per_video"] == 2
    assert saved["config_hash"] == hashlib.sha256(test_cfg.dump().encode()).hexdigest()
    assert saved["top1"] == pytest.approx(result["top1"])
    assert len(saved["per_class_acc"]) == 10
    with open(tmp_path / "eval" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(5))
    assert all(r["path"].endswith(".mp4") for r in rows)
    top1 = 100.0 * sum(int(r["pred1"]) == int(r["label"]) for r in rows) / 5
    assert top1 == pytest.approx(saved["top1"])
    assert float(rows[0]["score1"]) >= float(rows[0]["score5"])
    scores = np.load(tmp_path / "eval" / "scores.npy")  # predictions.csv row order
    assert scores.shape == (5, 10) and scores.dtype == np.float32
    assert scores.argmax(1).tolist() == [int(r["pred1"]) for r in rows]
    np.testing.assert_allclose(scores.max(1), [float(r["score1"]) for r in rows], atol=1e-6)

    # auto-resume: two more epochs continue from epoch 2 with the saved state
    more = load_cfg(None, tiny_focal_cfg(tmp_path, **{"TRAIN.EPOCHS": 3}))
    (out / "latest.pth.tmp-4242").write_bytes(b"half a checkpoint from a killed save")
    train(more)
    assert not (out / "latest.pth.tmp-4242").exists()
    assert "resumed from" in (out / "log.txt").read_text()
    assert torch.load(out / "latest.pth", weights_only=True)["iteration"] == 6


def test_total_steps_ends_inside_the_last_epoch_with_the_cosine_over_those_steps(tmp_path):
    """TRAIN.TOTAL_STEPS 3 with 2 updates per epoch: two epochs, the second stops after one
    update; the LR follows torch's CosineAnnealingLR over the 3 steps (Vita-CLIP's recipe)."""
    opts = tiny_focal_cfg(tmp_path, **{"TRAIN.TOTAL_STEPS": 3, "TRAIN.WARMUP_EPOCHS": 0,
                                       "TRAIN.MIN_LR": 0.0, "TRAIN.SCALE_LR": False,
                                       "TRAIN.BASE_LR": 0.01, "TRAIN.EPOCHS": 1})
    summary = train(load_cfg(None, opts))
    out = tmp_path / "out"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "train_iter"]
    assert [(r["epoch"], r["update"]) for r in steps] == [(0, 0), (0, 1), (1, 2)]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
    for record in steps:
        assert record["lr"] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        cosine.step()
    assert summary["iterations"] == 3 and summary["epochs"] == 2
    ckpt = torch.load(out / "latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 3
    assert [r["epoch"] for r in records if r["type"] == "val"] == [0, 1]
    # run again: the run is complete, nothing is trained or written
    before = (out / "metrics.jsonl").read_text()
    assert train(load_cfg(None, opts))["iterations"] == 3
    assert (out / "metrics.jsonl").read_text() == before


def test_errors_come_before_any_work(tmp_path):
    missing = load_cfg(None, tiny_focal_cfg(tmp_path, **{"MODEL.RESUME": str(tmp_path / "x.pth")}))
    with pytest.raises(FileNotFoundError, match="x.pth does not exist"):
        train(missing)
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = load_cfg(None, tiny_focal_cfg(tmp_path, output="file/run"))
    with pytest.raises(PermissionError, match="not writable"):
        train(unwritable)
    assert not (tmp_path / "syn").exists() and not (tmp_path / "out").exists()


def test_official_cli_flags_map_onto_keys(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "train_tool", os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(["--cfg", "x.yaml", "--batch-size", "6", "--resume", "r.pth",
                            "--accumulation-steps", "3", "--use-checkpoint", "--amp-opt-level",
                            "O1", "--output", str(tmp_path), "--tag", "t1", "--eval",
                            "--local_rank", "0", "--opts", "TRAIN.EPOCHS", "7"])
    cfg = load_cfg(None, tool.args_to_opts(args))
    assert (cfg.DATA.BATCH_SIZE, cfg.MODEL.RESUME, cfg.TRAIN.ACCUMULATION_STEPS) == (6, "r.pth", 3)
    assert cfg.TRAIN.USE_CHECKPOINT and cfg.EVAL_MODE and cfg.TRAIN.AMP == "fp16"
    assert (cfg.OUTPUT, cfg.TAG, cfg.TRAIN.EPOCHS) == (str(tmp_path), "t1", 7)
    assert tool.parse_args(["--cfg", "x", "--local-rank", "1"]).local_rank == 1


def test_throughput_mode_measures_clips_per_second(tmp_path):
    from engine.trainer import throughput
    cfg = load_cfg(None, tiny_focal_cfg(tmp_path, **{"THROUGHPUT_MODE": True}))
    rate = throughput(cfg, warmup=1, iterations=2)
    assert rate > 0


def test_test_refuses_a_checkpoint_of_another_model(tmp_path):
    from engine.checkpoint import CheckpointError, atomic_torch_save
    from engine.trainer import test as run_test
    bogus = tmp_path / "other.pth"
    atomic_torch_save({"model": {"head.weight": torch.zeros(3, 3)}}, str(bogus))
    with pytest.raises(CheckpointError, match="does not match the model"):
        run_test(load_cfg(None, tiny_focal_cfg(tmp_path)), str(bogus))
