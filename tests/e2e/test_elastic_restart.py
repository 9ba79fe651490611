"""torchrun --max-restarts on two gloo processes: one worker SIGKILLed, the group restarted by the
elastic agent. Mid-run the restarted group resumes and ends with the weights of a run never
interrupted; killed after the last checkpoint, every restarted rank sees a finished run and
exits 0 (engine/distributed.py gives each restart attempt fresh rendezvous keys)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.tiny import child_env, tiny_config, write_yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    root = tmp_path_factory.mktemp("elastic")
    # the tiny Video-FocalNet for 4 epochs (one of warm-up), OUTPUT given on the command line
    write_yaml(root / "tiny.yaml", tiny_config("focal", root, {
        "DATA.INPUT_SIZE": 32, "DATA.SYNTHETIC.NUM_VAL": 2, "TRAIN.EPOCHS": 4,
        "TRAIN.WARMUP_EPOCHS": 1, "TRAIN.BASE_LR": 0.05, "TRAIN.AUTO_RESUME": True,
        "OUTPUT": None}))
    ensure_synthetic(str(root / "syn"), synthetic_settings(8, 2, 4, 32, 0))
    return root


def _launch(workdir: Path, out: Path) -> subprocess.Popen:
    env = child_env()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "--max-restarts", "2", str(REPO / "tools" / "train.py"),
               "--cfg", str(workdir / "tiny.yaml"), "--output", str(out)]
    log = open(f"{out}.log", "w")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _worker(out: Path, rank: int) -> int | None:
    """The pid of the first attempt's worker of ``rank`` for the run into ``out``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"TORCHELASTIC_RESTART_COUNT=0" in environ \
                and str(out).encode() in cmdline and b"train.py" in cmdline:
            return int(entry)
    return None


def _finish(proc: subprocess.Popen, out: Path, timeout: float = 240) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"torchrun still running after {timeout} s:\n"
                    f"{Path(f'{out}.log').read_text()[-3000:]}")
    return Path(f"{out}.log").read_text()


def _kill_rank1_once(proc: subprocess.Popen, out: Path, when: str) -> None:
    deadline = time.time() + 180
    while not (out / when).exists():
        assert proc.poll() is None, Path(f"{out}.log").read_text()[-3000:]
        assert time.time() < deadline, f"no {when} after 180 s"
        time.sleep(0.005)
    pid = _worker(out, 1)
    if pid is None:
        pytest.skip("rank 1 ended before it could be killed (the machine was too fast)")
    os.kill(pid, signal.SIGKILL)


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")["model"]


def _assert_same_weights(got: dict, ref: dict) -> None:
    assert got.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def killed_at_the_end(workdir):
    """rank 1 SIGKILLed right after the last checkpoint: its weights are those of a run that
    was never interrupted (every epoch trained in one go), the reference for the other test."""
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find the workers")
    out = workdir / "killed_end"
    proc = _launch(workdir, out)
    _kill_rank1_once(proc, out, "ckpt_epoch_3.pth")
    log = _finish(proc, out)
    return out, proc.returncode, log


def test_a_worker_killed_after_the_last_checkpoint_ends_cleanly(killed_at_the_end):
    out, code, log = killed_at_the_end
    assert code == 0, log[-3000:]
    assert "connectFullMesh" not in log and "Traceback" not in log
    assert "epoch 3 done" in log  # the restarted group resumed from the last checkpoint ...
    assert log.count("nothing to train") >= 2  # ... and every rank saw a finished run


def test_a_worker_killed_mid_run_is_restarted_and_resumes(workdir, killed_at_the_end):
    reference = _weights(killed_at_the_end[0] / "latest.pth")
    out = workdir / "killed_mid"
    proc = _launch(workdir, out)
    _kill_rank1_once(proc, out, "ckpt_epoch_1.pth")
    log = _finish(proc, out)
    assert proc.returncode == 0, log[-3000:]
    assert "resumed from" in (out / "log.txt").read_text()
    assert torch.load(out / "latest.pth", weights_only=True)["epoch"] == 3
    _assert_same_weights(_weights(out / "latest.pth"), reference)
