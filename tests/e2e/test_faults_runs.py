"""Faults around a training run's OUTPUT: one run at a time (the lock), a refused or finished
re-run that changes nothing, restarts that keep the history, Ctrl-C, a full disk and an unsafe
latest.pth. One tiny run is trained once (in this process) and copied for each case."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch

from engine import runlock
from engine.runlock import LOCK_NAME, RunLock, RunLockedError
from tests.helpers.faults import REPO, make_synthetic, one_error_line, run_main, snapshot, \
    write_tiny_config
from tools import test as test_tool
from tools import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run: (root with tiny.yaml and syn/, its OUTPUT root/run)."""
    root = tmp_path_factory.mktemp("faults_run")
    make_synthetic(root)
    cfg = write_tiny_config(root)
    assert train.main(["--cfg", str(cfg)]) == 0
    return root, root / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    """A private copy of the finished run: (config, OUTPUT) with OUTPUT at tmp_path/run."""
    root, run = finished
    shutil.copytree(run, tmp_path / "run")
    os.symlink(root / "syn", tmp_path / "syn")
    return write_tiny_config(tmp_path), tmp_path / "run"


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# One run per OUTPUT
# ---------------------------------------------------------------------------------------------
def test_the_finished_run_left_no_lock(finished):
    assert not (finished[1] / LOCK_NAME).exists()
    assert {"config.yaml", "run_info.json", "log.txt", "metrics.jsonl", "latest.pth",
            "best.pth", "ckpt_epoch_0.pth"} <= {p.name for p in finished[1].iterdir()}


def test_a_second_run_is_refused_naming_the_first(run_copy, capsys):
    cfg, run = run_copy
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from engine.runlock import RunLock; RunLock(sys.argv[2], 'training').acquire(); "
         "print('locked', flush=True); time.sleep(120)", str(REPO), str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run)
        for main, extra in ((train.main, ["--opts", "TRAIN.EPOCHS", "2"]),
                            (test_tool.main, ["--checkpoint", run / "best.pth"])):
            code, _, err = run_main(main, ["--cfg", cfg, *extra], capsys)
            assert code == 2
            line = one_error_line(err)
            assert line.startswith(f"error: OUTPUT {run} is in use by another run: pid "
                                   f"{holder.pid} on {socket.gethostname()}, started ")
            assert "wait for it to finish or stop it" in line
            assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is stale and the next run takes it over
    assert (run / LOCK_NAME).exists()
    code, out, _ = run_main(train.main, ["--cfg", cfg], capsys)
    assert code == 0 and "nothing to train" in out and not (run / LOCK_NAME).exists()


def test_stale_and_foreign_locks(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "proc_start": "1",
              "start_time": "2000-01-01T00:00:00", "command": ["x"]}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with RunLock(str(tmp_path)) as lock:  # a dead process's lock is taken over
        assert runlock.read_lock(lock.path)["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(str(tmp_path)).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    # a live pid with another start time is a reused pid: stale too
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(record, pid=os.getpid(),
                                                      proc_start="0")))
    RunLock(str(tmp_path)).acquire().release()
    # another host cannot be checked from here: refused, with how to remove it
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(record, host="elsewhere")))
    with pytest.raises(RunLockedError) as err:
        RunLock(str(tmp_path)).acquire()
    assert f"on elsewhere" in str(err.value) and f"delete {tmp_path / LOCK_NAME}" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Re-runs into a finished run
# ---------------------------------------------------------------------------------------------
def test_a_refused_rerun_changes_nothing(run_copy, capsys):
    cfg, run = run_copy
    before = snapshot(run)
    code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "MODEL.FOCAL.ST_DESIGN",
                                         "spatial", "TRAIN.EPOCHS", "2"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"error: OUTPUT {run} holds a run of another model config") and \
        "Choose another OUTPUT" in line
    assert snapshot(run) == before
    # the finished run still evaluates from its own files
    code, out, _ = run_main(test_tool.main, ["--cfg", run / "config.yaml", "--checkpoint",
                                             run / "best.pth", "--output", run], capsys)
    assert code == 0 and (run / "eval_results.json").is_file()
    # the evaluation's config (its OUTPUT differs) goes beside the training run's, not over it
    assert (run / "config.yaml").read_bytes() == before["config.yaml"][0]
    assert (run / "eval_config.yaml").is_file()


def test_a_finished_run_is_left_as_it_is(run_copy, capsys):
    cfg, run = run_copy
    before = snapshot(run)
    code, out, err = run_main(train.main, ["--cfg", cfg], capsys)
    assert code == 0 and err == ""
    assert "nothing to train" in out and "No file was changed" in out
    assert snapshot(run) == before


def test_an_unsafe_latest_stops_auto_resume(run_copy, capsys):
    cfg, run = run_copy

    class Payload:
        def __reduce__(self):
            return os.system, ("true",)

    torch.save({"model": Payload(), "epoch": 0}, run / "latest.pth")
    before = snapshot(run)
    code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "TRAIN.EPOCHS", "2"], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: refusing to load {run}/latest.pth: it can "
                                          f"only be read by executing arbitrary pickled code")
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# Restarts keep the history
# ---------------------------------------------------------------------------------------------
def test_a_restart_keeps_the_history(run_copy, capsys):
    cfg, run = run_copy
    first = json.loads((run / "run_info.json").read_text())
    # what a kill in epoch 1 leaves behind: iterations of epoch 1 and a line cut in half
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        for i in range(3):
            f.write(json.dumps({"type": "train_iter", "epoch": 1, "iter": i, "loss": 9.0}) + "\n")
        f.write('{"type": "train_it')
    kept = [r for r in _records_prefix(run) if r.get("epoch", 0) < 1]
    code, _, _ = run_main(train.main, ["--cfg", cfg, "--opts", "TRAIN.EPOCHS", "2"], capsys)
    assert code == 0
    info = json.loads((run / "run_info.json").read_text())
    assert info["start_time"] == first["start_time"]
    (restart,) = info["restarts"]
    assert restart["resumed_from"] == str(run / "latest.pth") and restart["start_epoch"] == 1
    records = _records(run)
    assert records[:len(kept)] == kept
    marker = records[len(kept)]
    assert marker["type"] == "restart" and marker["epoch"] == 1 and marker["dropped_records"] == 4
    iters = [(r["epoch"], r["iter"]) for r in records if r["type"] == "train_iter"]
    assert len(iters) == len(set(iters)) and all(r.get("loss") != 9.0 for r in records)


def _records_prefix(run):
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# Ctrl-C and a full disk
# ---------------------------------------------------------------------------------------------
class _Interrupting:
    """A loader that gives `at` batches, then raises KeyboardInterrupt (as Ctrl-C would)."""

    def __init__(self, loader, at):
        self.loader, self.at = loader, at

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == self.at:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_says_where_and_exits_130(run_copy, capsys, monkeypatch):
    import engine.trainer as trainer
    cfg, run = run_copy
    real = trainer.train_one_epoch
    monkeypatch.setattr(trainer, "train_one_epoch",
                        lambda cfg_, model, loader, *a, **k: real(cfg_, model,
                                                                  _Interrupting(loader, 2), *a, **k))
    latest = (run / "latest.pth").read_bytes()
    code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "TRAIN.EPOCHS", "2"], capsys)
    assert code == 130
    assert err.strip() == ("interrupted at epoch 1 iteration 2; the last checkpoint is epoch 0; "
                           "run the same command to resume")
    assert (run / "latest.pth").read_bytes() == latest and not (run / LOCK_NAME).exists()


def test_ctrl_c_of_a_real_process(tmp_path, finished):
    """SIGINT to a training process: no traceback, exit status 130."""
    root, run = finished
    shutil.copytree(run, tmp_path / "run")
    os.symlink(root / "syn", tmp_path / "syn")
    cfg = write_tiny_config(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("VIDEO_DEBUG", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "train.py"), "--cfg", str(cfg),
                             "--opts", "TRAIN.EPOCHS", "400", "PRINT_FREQ", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (`cmd &` in a script) ignores
                            # SIGINT, and children inherit that: give the trainer the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:  # wait until it trains
            if "Train epoch 2 [" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("interrupted at epoch ") and "run the same command to resume" in \
        lines[0]
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_full_disk_while_saving(run_copy, capsys, monkeypatch):
    cfg, run = run_copy
    keep = {name: (run / name).read_bytes() for name in ("latest.pth", "best.pth",
                                                         "ckpt_epoch_0.pth")}
    real_save = torch.save

    def no_space(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", no_space)
    code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "TRAIN.EPOCHS", "2"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: no space left on device while writing "
                                   f"{run}/latest.pth; the previous checkpoint is intact")
    assert {name: (run / name).read_bytes() for name in keep} == keep
    assert not [p for p in run.iterdir() if ".tmp-" in p.name or p.name == LOCK_NAME]


def test_the_lock_is_released_after_every_failure(run_copy, capsys):
    cfg, run = run_copy
    before = snapshot(run)
    for extra, words in (
            (["DATA.TRAIN_FILE", run / "none.csv", "DATA.DATASET", "csv"],
             f"{run}/none.csv: annotation file not found"),
            (["MODEL.NUM_CLASSES", "12"],
             "key MODEL.NUM_CLASSES: 12, but the bundled class list of DATA.DATASET synthetic "
             "has 10 names; set MODEL.NUM_CLASSES 10")):
        code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "TRAIN.EPOCHS", "2", *extra],
                                capsys)
        assert code == 2 and words in one_error_line(err)
        assert not (run / LOCK_NAME).exists()
    assert snapshot(run) == before
    lock = RunLock(str(run)).acquire()
    assert lock.held
    lock.release()
