"""End to end under torchrun with two gloo processes: tiny Video-FocalNet and tiny Vita-CLIP
train on generated videos, a run is SIGKILLed and resumed, checkpoints are evaluated.

Also: one process with batch 2b gives the same loss curve as two processes with batch b, and
evaluation over two processes scores every video exactly as one process does.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.tiny import child_env, run_config, write_yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_yaml(root / "focal.yaml", run_config("focal", root))
    write_yaml(root / "vita.yaml", run_config("vita", root))
    # Generated up front: Vita-CLIP's config names the set's classes.txt, which the data layer
    # reads before it would generate the set.
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    ensure_synthetic(str(root / "syn"), synthetic_settings(24, 5, 4, 32, 0))
    return root


def _command(tool: str, cfg: Path, nproc: int, *args: str) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node", str(nproc)] if nproc > 1 else [sys.executable]
    return launch + [str(REPO / "tools" / tool), "--cfg", str(cfg), *args]


def _run(tool, cfg, nproc, *args, timeout=240, command=None, env=None):
    proc = subprocess.run(command or _command(tool, cfg, nproc, *args), cwd=REPO,
                          env=env or child_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(output: Path) -> list[float]:
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["type"] == "train_iter"]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _model_state(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")["model"]


@pytest.fixture(scope="module")
def focal_reference(workdir):
    """Two processes x batch 2, two epochs, never interrupted."""
    out = workdir / "focal_ref"
    script = [str(REPO / "scripts" / "dist_train.sh"), str(workdir / "focal.yaml"), "2",
              "--output", str(out)]
    _run("dist_train.sh", None, 2, command=script, env=dict(child_env(), PYTHON=sys.executable))
    return out


def test_focal_two_processes_write_the_run_files(focal_reference):
    out = focal_reference
    assert {"config.yaml", "run_info.json", "log.txt", "metrics.jsonl", "tb", "latest.pth",
            "best.pth", "ckpt_epoch_0.pth", "ckpt_epoch_1.pth"} <= set(os.listdir(out))
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    ckpt = torch.load(out / "latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 12  # 24 clips / (2 x 2) x 2 epochs
    assert len(ckpt["rng"]) == 2  # every rank's random state
    log = (out / "log.txt").read_text()
    assert "epoch 1 validation: top-1" in log and "(5 videos" in log
    assert len(_losses(out)) == 12


def test_one_process_matches_two_processes_loss_curve(workdir, focal_reference):
    single = workdir / "focal_single"
    _run("train.py", workdir / "focal.yaml", 1, "--output", str(single), "--batch-size", "4")
    one, two = _losses(single), _losses(focal_reference)
    assert len(one) == len(two) == 12
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    ref, got = _model_state(focal_reference / "latest.pth"), _model_state(single / "latest.pth")
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-4, atol=1e-5)


def test_sigkill_mid_training_then_resume_matches_uninterrupted(workdir, focal_reference):
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find torchrun's worker processes")
    out = workdir / "focal_killed"
    proc = subprocess.Popen(_command("train.py", workdir / "focal.yaml", 2, "--output", str(out)),
                            cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    try:
        while not (out / "ckpt_epoch_0.pth").exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint after 180 s"
            time.sleep(0.01)
        victims = _descendants(proc.pid)
        for pid in victims:  # workers run in their own sessions: kill each by id
            os.kill(pid, signal.SIGKILL)
        proc.kill()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "ckpt_epoch_1.pth").exists(), "the kill came after training finished"
    for pid in victims:
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
            time.sleep(0.05)  # reaped by init once orphaned
    assert torch.load(out / "latest.pth", weights_only=True)["epoch"] in (0, 1)

    # resumed through the multi-node launcher (one node, c10d rendezvous)
    script = [str(REPO / "scripts" / "multinode_train.sh"), str(workdir / "focal.yaml"), "1", "2",
              f"127.0.0.1:{_free_port()}", "--output", str(out)]
    _run("multinode_train.sh", None, 2, command=script,
         env=dict(child_env(), PYTHON=sys.executable, RDZV_ID="resume-test"))
    assert "resumed from" in (out / "log.txt").read_text()
    ref, got = _model_state(focal_reference / "latest.pth"), _model_state(out / "latest.pth")
    assert ref.keys() == got.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6)
    assert not [p for p in os.listdir(out) if ".tmp-" in p]
    final = torch.load(out / "latest.pth", weights_only=True)
    assert final["epoch"] == 1 and final["iteration"] == 12


def _predictions(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_process_evaluation_scores_every_video_once(workdir, focal_reference):
    ckpt = str(focal_reference / "best.pth")
    two, one = workdir / "eval2", workdir / "eval1"
    # 5 videos over 2 ranks with batch 2: rank 0 gets 3 (a last batch of 1), rank 1 gets 2
    _run("test.py", workdir / "focal.yaml", 2, "--checkpoint", ckpt, "--output", str(two),
         "--opts", "TEST.NUM_CLIP", "2", "TEST.NUM_CROP", "3")
    _run("test.py", workdir / "focal.yaml", 1, "--checkpoint", ckpt, "--output", str(one),
         "--opts", "TEST.NUM_CLIP", "2", "TEST.NUM_CROP", "3")
    result = json.loads((two / "eval_results.json").read_text())
    assert result["num_videos"] == 5
    assert result["views"] == {"num_clip": 2, "num_crop": 3, "per_video": 6}
    assert result["checkpoint"] == os.path.abspath(ckpt)
    assert len(result["config_hash"]) == 64
    rows2, rows1 = _predictions(two / "predictions.csv"), _predictions(one / "predictions.csv")
    assert [int(r["index"]) for r in rows2] == [0, 1, 2, 3, 4]
    for a, b in zip(rows2, rows1):
        assert (a["path"], a["label"], a["pred1"]) == (b["path"], b["label"], b["pred1"])
        assert float(a["score1"]) == pytest.approx(float(b["score1"]), abs=1e-5)
    top1 = 100.0 * sum(r["pred1"] == r["label"] for r in rows2) / 5
    assert result["top1"] == pytest.approx(top1)
    assert json.loads((one / "eval_results.json").read_text())["top1"] == pytest.approx(top1)


def test_missing_checkpoint_fails_fast(workdir):
    proc = subprocess.run(_command("test.py", workdir / "focal.yaml", 1, "--checkpoint",
                                   str(workdir / "nope.pth"), "--output", str(workdir / "x")),
                          cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope.pth does not exist" in proc.stderr
    assert not (workdir / "x").exists()


def test_vita_clip_two_processes_train_and_test(workdir):
    out = workdir / "vita"
    labels = ["--opts", "DATA.LABEL_LIST", str(workdir / "syn" / "classes.txt")]
    # trained through the SLURM launcher, with srun/scontrol stand-ins for a one-node allocation
    bin_dir = workdir / "fake_slurm"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\nwhile [ "$1" != bash ]; do shift; done\n'
                                  'export SLURM_NNODES=1 SLURM_JOB_ID=4242 '
                                  'SLURM_JOB_NODELIST=localhost\nexec "$@"\n')
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\necho 127.0.0.1\n")
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    env = dict(child_env(), PYTHON=sys.executable, GPUS_PER_NODE="2", PORT=str(_free_port()),
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    script = [str(REPO / "scripts" / "slurm_train.sh"), str(workdir / "vita.yaml"),
              "--output", str(out), *labels]
    _run("slurm_train.sh", None, 2, command=script, env=env)
    ckpt = torch.load(out / "latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 12
    # only the trainable tensors (prompts, summary attention, logit scale...) have state
    state_count = len(ckpt["optimizer"]["state"])
    param_count = sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"])
    assert state_count == param_count
    assert param_count < len([k for k in ckpt["model"] if not k.endswith(("token_prefix",
                                                                           "token_suffix"))])
    decay = {g["weight_decay"] for g in ckpt["optimizer"]["param_groups"]}
    assert decay == {0.05, 0.0}
    losses = _losses(out)
    assert len(losses) == 12 and all(map(lambda v: v == v, losses))
    _run("test.py", workdir / "vita.yaml", 2, "--checkpoint", str(out / "best.pth"),
         "--output", str(workdir / "vita_eval"), *labels)
    result = json.loads((workdir / "vita_eval" / "eval_results.json").read_text())
    assert result["num_videos"] == 5 and result["model"] == "vita_clip"
    assert 0.0 <= result["top1"] <= result["top5"] <= 100.0
    assert len(_predictions(workdir / "vita_eval" / "predictions.csv")) == 5


NAN_SCRIPT = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import torch, torch.nn as nn
from engine.config import get_cfg
from engine import distributed as du
from engine.build import build_grad_scaler, build_optimizer, build_scheduler, wrap_model
from engine.trainer import TrainState, train_one_epoch

class NaNOnRank0(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(12, 3)
        self.calls = 0
    def forward(self, x):
        self.calls += 1
        out = self.fc(x.flatten(1))
        if self.calls == 2 and du.get_rank() == 0:  # only one rank sees the NaN
            out = out * float("nan")
        return out

cfg = get_cfg()
cfg.DIST.DEVICE = "cpu"
cfg.TRAIN.NAN_POLICY = "skip"
cfg.TRAIN.EPOCHS = 1
cfg.TRAIN.WARMUP_EPOCHS = 0
cfg.TRAIN.SCALE_LR = False
info = du.init_distributed(cfg)
model = NaNOnRank0()
ddp = wrap_model(cfg, model, info)
opt = build_optimizer(cfg, model, info.world_size)
sched = build_scheduler(cfg, opt, 4)
g = torch.Generator().manual_seed(info.rank)
batches = [(torch.randn(2, 1, 3, 2, 2, generator=g), torch.randint(0, 3, (2,), generator=g))
           for _ in range(4)]
state = TrainState()
train_one_epoch(cfg, ddp, batches, opt, sched, build_grad_scaler(cfg, info.device),
                nn.CrossEntropyLoss(), info.device, state, show_progress=False)
weights = du.all_gather_objects(model.fc.weight.detach().clone())
json.dump({"skipped": state.skipped_steps, "iteration": state.iteration,
           "same": bool(torch.equal(weights[0], weights[1])),
           "finite": bool(torch.isfinite(model.fc.weight).all())},
          open(os.path.join(sys.argv[2], f"rank{info.rank}.json"), "w"))
du.cleanup()
'''


def test_nan_on_one_rank_is_skipped_on_every_rank(tmp_path):
    script = tmp_path / "nan_ddp.py"
    script.write_text(NAN_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(REPO), str(tmp_path)]
    _run("nan_ddp.py", None, 2, command=cmd, timeout=120)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result == {"skipped": 1, "iteration": 4, "same": True, "finite": True}
