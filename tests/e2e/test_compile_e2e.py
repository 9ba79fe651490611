"""torch.compile end to end: tools/train.py with inductor, resumed uncompiled and compiled
(checkpoints keep plain names), and torchrun with two gloo processes, compiled = uncompiled.
The unit tests of engine/compile.py are in tests/unit/engine/test_compile.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine.compile as engine_compile
from datasets.synthetic import ensure_synthetic, synthetic_settings
from engine.compile import compile_clock
from engine.config import load_cfg
from tests.helpers.tiny import child_env, focal_run_opts as tiny_focal_cfg, run_config, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_compiled_with_inductor_then_resume_uncompiled_and_compiled(tmp_path,
                                                                          monkeypatch):
    from engine.trainer import train
    monkeypatch.setattr(engine_compile, "BACKEND", "inductor")
    compiled_opts = {"TRAIN.COMPILE": "default", "TEST.COMPILE": "default"}
    clock = compile_clock()
    before = clock.compiles
    # 8 training clips in batches of 4; 5 validation videos in batches of 2 (last one smaller)
    train(load_cfg(None, tiny_focal_cfg(tmp_path, **compiled_opts, **{"TRAIN.EPOCHS": 1})))
    assert clock.compiles - before == 2  # the training step, the evaluation step
    out = tmp_path / "out"
    compiles = [r for r in _records(out) if r["type"] == "compile"]
    assert [(r["phase"], r["mode"]) for r in compiles] == [("train", "default"),
                                                           ("eval", "default")]
    assert all(r["seconds"] > 0 for r in compiles)
    epoch = next(r for r in _records(out) if r["type"] == "train_epoch")
    assert epoch["compile_s"] == pytest.approx(compiles[0]["seconds"])
    log = (out / "log.txt").read_text()
    assert "compiled the training step in" in log and "compiled the evaluation step in" in log
    state = torch.load(out / "latest.pth", weights_only=True)["model"]
    assert not [k for k in state if "_orig_mod" in k or k.startswith("module.")]

    train(load_cfg(None, tiny_focal_cfg(tmp_path, **{"TRAIN.EPOCHS": 2})))  # uncompiled resume
    train(load_cfg(None, tiny_focal_cfg(tmp_path, **compiled_opts, **{"TRAIN.EPOCHS": 3})))
    assert (out / "log.txt").read_text().count("resumed from") == 2
    assert torch.load(out / "latest.pth", weights_only=True)["iteration"] == 6
    losses = [r["loss"] for r in _records(out) if r["type"] == "train_epoch"]
    assert len(losses) == 3 and all(map(torch.isfinite, torch.tensor(losses)))


LAUNCHER = """
import runpy, sys
sys.path.insert(0, {repo!r})
import engine.compile
engine.compile.BACKEND = "aot_eager"
sys.argv = [{train!r}] + sys.argv[1:]
runpy.run_path({train!r}, run_name="__main__")
"""


@pytest.mark.slow
def test_ddp_two_processes_compiled_equals_uncompiled(tmp_path):
    """torchrun, two gloo processes, accumulation 2 (DDP no_sync inside the compiled step)."""
    ensure_synthetic(str(tmp_path / "syn"), synthetic_settings(24, 5, 4, 32, 0))
    cfg = write_yaml(tmp_path / "focal.yaml", run_config("focal", tmp_path))
    launcher = tmp_path / "launch_train.py"
    launcher.write_text(LAUNCHER.format(repo=str(REPO), train=str(REPO / "tools" / "train.py")))
    losses = {}
    for mode in ("off", "default"):
        out = tmp_path / mode
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "2", str(launcher), "--cfg", str(cfg), "--output",
                   str(out), "--opts", "TRAIN.EPOCHS", "1", "TRAIN.ACCUMULATION_STEPS", "2",
                   "TRAIN.COMPILE", mode, "TEST.COMPILE", mode]
        proc = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True,
                              timeout=400)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        losses[mode] = [r["loss"] for r in _records(out) if r["type"] == "train_iter"]
        state = torch.load(out / "latest.pth", weights_only=True)["model"]
        assert not [k for k in state if "_orig_mod" in k or k.startswith("module.")]
    assert len(losses["default"]) == 6
    torch.testing.assert_close(torch.tensor(losses["default"]), torch.tensor(losses["off"]),
                               atol=1e-5, rtol=1e-5)
    log = (tmp_path / "default" / "log.txt").read_text()
    assert "compiled the training step in" in log
