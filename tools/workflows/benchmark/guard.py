"""The regression guard: this checkout's models against another revision's, on the same machine,
interleaved step by step (``tools/benchmark.py --baseline REV``).

    python tools/benchmark.py --baseline main            # the short setting, under 3 minutes
    python tools/benchmark.py --baseline main --model vita_clip_b16 --batch-sizes 2 --repeats 3

Two worker processes (``worker.py``) hold the same model built with the same seed, one importing
the library packages from ``git archive REV`` (``revision.py``), one from this checkout. After
one warm-up step each, every repeat runs each mode once in each worker, the order rotating, so
both see the same machine load. Reported per model and mode: the best and median step of each
side, their ratio (above 1: this checkout is faster), process CPU time, each worker's peak
resident memory, and whether the two give the same inference logits on the same clip (exact
equality is expected unless the change meant to alter the numbers). A row whose median is more
than ``SLOWER_THAN`` slower is marked; rerun before believing it on a loaded machine.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

import torch

from tools._cli import UsageError

from .revision import REPO_ROOT, archive_revision, describe_revision

__all__ = ["GUARD_MODELS", "SLOWER_THAN", "run_guard"]

# the short setting: float32 steps of the default configurations at batch 1, 8x224
GUARD_MODELS = ("video_focalnet_tiny", "vita_clip_b16")
GUARD_REPEATS = 3
SLOWER_THAN = 0.97  # a change that costs more than 3% needs a reason (docs/benchmarks.md)


class _Worker:
    def __init__(self, name: str, code: str, config: dict):
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH"))
                                            if p)
        # stderr to a file: a pipe nobody reads would block a worker that warns a lot
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.workflows.benchmark.worker",
             json.dumps(dict(config, code=code))], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, cwd=str(REPO_ROOT), env=env)

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=60)
            self.log.seek(0)
            error = self.log.read().strip()[-2000:]
            raise RuntimeError(f"the {self.name} worker stopped:\n{error}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> dict:
        try:
            return self.ask("quit")
        finally:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _compare_model(model: str, args, baseline_code: str) -> dict[str, Any]:
    batch = sorted(args.batch_sizes)[0]
    config = {"model": model, "num_frames": args.num_frames, "img_size": args.img_size,
              "num_classes": args.num_classes, "batch_size": batch, "modes": list(args.modes),
              "threads": args.threads or torch.get_num_threads()}
    workers = {"baseline": _Worker("baseline", baseline_code, config),
               "current": _Worker("current", str(REPO_ROOT), config)}
    try:
        ready = {name: w.read() for name, w in workers.items()}
        for name, root in (("baseline", baseline_code), ("current", str(REPO_ROOT))):
            stray = [p for p in ready[name]["packages"].values()
                     if not os.path.realpath(p).startswith(os.path.realpath(root))]
            if stray:
                raise RuntimeError(f"the {name} worker imported {stray[0]}, not from {root}")
        times = {(name, mode): [] for name in workers for mode in args.modes}
        for mode in args.modes:
            for w in workers.values():
                w.ask(mode)  # warm-up: first-call allocations and kernel selection
        order = list(workers)
        for repeat in range(args.repeats):
            for mode in args.modes:
                for name in order[repeat % 2:] + order[:repeat % 2]:
                    times[(name, mode)].append(workers[name].ask(mode))
        peaks = {name: w.close()["peak_mb"] for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.kill()
    a, b = ready["baseline"]["logits"], ready["current"]["logits"]
    result = {"model": model, "batch_size": batch, "isa": ready["current"]["isa"],
              "max_abs_logit_diff": max(abs(x - y) for x, y in zip(a, b)),
              "peak_mb": {name: round(v, 1) for name, v in peaks.items()}, "modes": {}}
    for mode in args.modes:
        row = {}
        for name in workers:
            walls = [t["s"] for t in times[(name, mode)]]
            row[name] = {"ms": round(min(walls) * 1e3, 2),
                         "median_ms": round(statistics.median(walls) * 1e3, 2),
                         "cpu_ms": round(min(t["cpu_s"] for t in times[(name, mode)]) * 1e3, 2)}
        for key in ("ms", "median_ms", "cpu_ms"):
            row[f"speedup_{key}"] = round(row["baseline"][key] / row["current"][key], 3)
        row["slower"] = row["speedup_median_ms"] < SLOWER_THAN and row["speedup_ms"] < SLOWER_THAN
        result["modes"][mode] = row
    return result


def run_guard(args, machine: dict) -> dict[str, Any]:
    """``args.baseline`` against this checkout for ``args.model`` (or every model of the short
    setting); see the module docstring."""
    if args.compare_reference or args.compile or args.runs:
        raise UsageError("--baseline compares two revisions of our models; run "
                         "--compare-reference, --compile or --runs without it")
    models = [args.model] if args.model else list(GUARD_MODELS)
    result = {"baseline": args.baseline, "baseline_commit": describe_revision(args.baseline),
              "machine": machine, "repeats": args.repeats, "models": []}
    with tempfile.TemporaryDirectory(prefix="benchmark-baseline-") as folder:
        try:
            archive_revision(args.baseline, folder)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if not args.json:
            print(f"baseline {args.baseline} ({result['baseline_commit']}) against this "
                  f"checkout; {machine['cpu_model']}, ATen {machine['torch_dispatch']}, load "
                  f"{' '.join(map(str, machine['load_average']))}", flush=True)
        for model in models:
            compared = _compare_model(model, args, folder)
            result["models"].append(compared)
            if not args.json:
                same = ("identical" if compared["max_abs_logit_diff"] == 0 else
                        f"differ by {compared['max_abs_logit_diff']:.2e}")
                for mode, row in compared["modes"].items():
                    print(f"{model} {mode:<5} batch {compared['batch_size']}: baseline "
                          f"{row['baseline']['ms']:.0f} ms (median "
                          f"{row['baseline']['median_ms']:.0f}), current {row['current']['ms']:.0f}"
                          f" ms (median {row['current']['median_ms']:.0f}): "
                          f"{row['speedup_ms']:.2f}x (median {row['speedup_median_ms']:.2f}x, "
                          f"cpu {row['speedup_cpu_ms']:.2f}x)"
                          + ("  SLOWER: rerun; a cost above 3% needs a reason" if row["slower"]
                             else ""), flush=True)
                print(f"{model}: outputs {same}; peak memory baseline "
                      f"{compared['peak_mb']['baseline']:.0f} MB, current "
                      f"{compared['peak_mb']['current']:.0f} MB", flush=True)
    return result
