"""Measurements in child processes: one per setting for its own peak memory (``--runs``), and the
whole benchmark under a forced instruction set (``--isa``), whose variables must be set before
torch loads.

``--runs impl:mode:dtype,...``: each entry runs in a fresh process, so its peak memory is its own
(peak resident set minus the size right after the model was built). A training step there is
forward + cross-entropy + backward + AdamW over the trainable parameters; ``infer`` is a no-grad
forward. Reported per run: ``sec`` / ``cpu_sec`` (best step), ``peak_mb`` and ``model_mb``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import torch

from engine.build import count_parameters
from tools._cli import UsageError

from .models import build_benchmark_models, make_step, peak_memory_mb, select_device, time_step
from .revision import REPO_ROOT

__all__ = ["DEFAULT_RUNS", "parse_runs", "measure_one", "run_separate_processes", "child_run",
           "run_child"]

DEFAULT_RUNS = ("reference:train:float32,ours:train:float32,ours:train:bfloat16,"
                "reference:infer:float32,ours:infer:float32")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def child_run(argv: list[str], env: dict[str, str] | None = None,
              capture: bool = True) -> subprocess.CompletedProcess:
    """``python -m tools.workflows.benchmark ARGV`` in a fresh process (``env``: its
    environment, this checkout first on its PYTHONPATH); its output captured or passed on."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "tools.workflows.benchmark"] + argv
    return subprocess.run(cmd, capture_output=capture, text=True, env=env, cwd=str(REPO_ROOT))


def run_child(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``child_run`` of ``argv``: the JSON object that ends its output (the only top-level one
    starting a line), parsed."""
    out = child_run(argv, env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(argv)} failed:\n"
                           f"{out.stderr.strip()[-2000:]}")
    text = out.stdout.strip()
    return json.loads(text[text.rfind("\n{") + 1:])


def measure_one(args) -> dict[str, Any]:
    """One (impl, mode, dtype) measurement in this process: best step time, peak memory."""
    device = select_device(args.device, args.threads)
    batch, mode, dtype = args.batch_sizes[0], args.modes[0], (args.dtypes or ["float32"])[0]
    models, clip_shape = build_benchmark_models(args.model, args.num_frames, args.img_size,
                                                args.num_classes, args.impl == "reference",
                                                args.design)
    if args.impl == "reference" and "reference" not in models:
        raise RuntimeError(f"no reference port for {args.model} in this checkout")
    model = models.pop(args.impl).to(device)
    models.clear()  # only the measured model stays in memory
    video = torch.randn(batch, *clip_shape).to(device)
    labels = (torch.arange(batch) % max(args.num_classes, 1)).to(device)
    optimizer = None
    if mode == "train":
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=4e-4, weight_decay=0.05)
    base = _rss_mb()
    step = make_step(model, mode, video, labels, device, dtype, optimizer)
    stats = time_step({args.impl: step}, args.repeats, max(1, args.warmup), device)
    trainable, total = count_parameters(model)
    s = stats[args.impl]
    return {"impl": args.impl, "mode": mode, "dtype": dtype, "batch_size": batch,
            "isa": torch.backends.cpu.get_cpu_capability(),
            "sec": s["best_s"], "cpu_sec": s["best_cpu_s"],
            "peak_mb": peak_memory_mb(device) - (0.0 if device == "cuda" else base),
            "model_mb": base, "trainable_params": trainable, "params": total}


def parse_runs(text: str) -> list[tuple[str, str, str]]:
    runs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if (len(parts) != 3 or parts[0] not in ("ours", "reference")
                or parts[1] not in ("train", "infer")
                or parts[2] not in ("float32", "bfloat16")):
            raise UsageError(f"--runs: {item!r} is not impl:mode:dtype with impl ours|reference, "
                             f"mode train|infer, dtype float32|bfloat16")
        if parts[0] == "reference" and parts[2] != "float32":
            raise UsageError(f"--runs: {item!r}: the reference runs in float32 only")
        runs.append((parts[0], parts[1], parts[2]))
    return runs


def run_separate_processes(args, machine: dict) -> dict[str, Any]:
    """Every ``--runs`` entry (per batch size) measured by a fresh ``measure_one`` process (with
    this process' environment, so a forced instruction set holds there too)."""
    common = ["--model", args.model, "--img-size", str(args.img_size), "--num-frames",
              str(args.num_frames), "--num-classes", str(args.num_classes), "--threads",
              str(args.threads), "--repeats", str(args.repeats), "--warmup",
              str(max(1, args.warmup)), "--device", args.device]
    if args.design is not None:
        common += ["--design", args.design]
    results = []
    for batch in sorted(args.batch_sizes):
        for impl, mode, dtype in parse_runs(args.runs):
            result = run_child(["--impl", impl, "--modes", mode, "--dtypes", dtype,
                                "--batch-sizes", str(batch)] + common)
            results.append(result)
            if not args.json:
                print(f"{impl:9s} {mode:5s} {dtype:8s} batch {batch:<3} isa {result['isa']:7s} "
                      f"{result['sec']:8.2f} s/step wall {result['cpu_sec']:8.2f} s/step CPU  "
                      f"peak +{result['peak_mb']:6.0f} MB (model {result['model_mb']:.0f} MB)",
                      flush=True)
    if not args.json:
        ref = {(r["mode"], r["batch_size"]): r for r in results if r["impl"] == "reference"}
        for r in results:
            base = ref.get((r["mode"], r["batch_size"]))
            if r["impl"] == "ours" and base is not None:
                print(f"ours {r['mode']} {r['dtype']} batch {r['batch_size']}: "
                      f"{base['sec'] / r['sec']:.2f}x faster (wall), "
                      f"{base['cpu_sec'] / r['cpu_sec']:.2f}x less CPU time, peak memory "
                      f"{r['peak_mb'] / max(base['peak_mb'], 1):.2f}x of the reference")
    return {"model": args.model, "design": args.design or "default", "machine": machine,
            "separate_processes": True, "runs": results}
