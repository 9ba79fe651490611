"""Model speed: clips/s for inference and for a training step (forward + backward), per batch
size and precision, optionally against the line-by-line reference port with the same weights.

    python tools/benchmark.py --model video_focalnet_tiny [--batch-sizes 1 8] [--threads 2]
        [--dtypes float32 bfloat16] [--modes infer train] [--compare-reference]
        [--compile default max-autotune] [--profile 15] [--json]
    python tools/benchmark.py --model vita_clip_b16 --runs [--img-size 224 --classes 400
        --batch 2 --threads 2]        # each measurement in its own process (peak memory)
    python tools/benchmark.py --loader [--loader-baseline REV] [--loader-ops]
        # the data loader per worker: the harness of python -m datasets.benchmark

Every model the registry knows (``engine.registry.family_for_variant``) is measured the same
way: the family builds the model (``benchmark_models``); a reference port from ``tests/`` is
added when the checkout has one for that family (``REFERENCE_PORTS``).

In-process timing (default): every measurement is the minimum (``ms``) and the median
(``median_ms``) over ``--repeats`` single iterations after ``--warmup`` untimed ones; ours, each
``--compile`` mode (``compiled-<mode>``: the same module under torch.compile) and, with
``--compare-reference``, the reference alternate iteration by iteration, so all see the same
machine load. A compiled variant compiles during its first warmup iteration; that time is
reported as ``compile_s`` (engine.compile's clock), never inside an iteration time, with the
speed-up over eager and the iterations after which compiling has paid for itself.
``--profile N`` adds, per variant, the N ops with the most self CPU time in one extra iteration
(torch.profiler). Every row also has ``gflop``, the matrix-op work of one step (matrix products,
convolutions and attention, forward and backward, 2 FLOPs per multiply-add, counted once per
step by ``torch.utils.flop_counter``; element-wise ops are not counted), and ``gflops_per_s``;
``--roofline`` measures what this machine's matrix products and convolutions reach in the same
dtype and thread count (``result["roofline"]``) and adds each row's fraction of the GEMM rate, the
ceiling a step can approach but not pass. Besides wall-clock time,
the process CPU time of the iteration is recorded (``cpu_ms``; all threads summed): on a shared
machine it is the steadier number, especially with ``--threads 1``. CPU precisions: float32 and
bfloat16 autocast; GPU: float32, float16 and bfloat16 autocast. Peak memory: CUDA allocator peak
on GPU; on CPU the growth of the process' peak resident set (``ru_maxrss``) during the
measurement, which only shows what exceeds earlier peaks (runs go from small to large).

Separate processes (``--runs [impl:mode:amp,...]``): each measurement runs in a fresh process,
so its peak memory is its own (peak resident set minus the size right after the model was
built). A training step there is forward + cross-entropy + backward + AdamW over the trainable
parameters; ``eval`` is a no-grad forward. Reported per run: ``sec`` / ``cpu_sec`` (best step),
``peak_mb`` and ``model_mb``.

Inference of a model that scores videos against text (it has ``encode_text``) is timed as the
engine's evaluator runs it: class features computed once, outside the timing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.build import count_parameters
from engine.compile import compile_clock, compile_model
from engine.evaluation import class_text_features
from engine.registry import family_for_variant
from tools._cli import UsageError, make_main, new_parser

logger = logging.getLogger(__name__)

__all__ = ["REFERENCE_PORTS", "build_benchmark_models", "time_step", "run_model_benchmark",
           "measure_one", "run_separate_processes", "parse_args", "main"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_RUNS = ("reference:train:off,ours:train:off,ours:train:bf16,reference:eval:off,"
                "ours:eval:off")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def _video_focalnet_reference(name: str, model: nn.Module, options: dict) -> nn.Module:
    from tests.reference_vfn import VideoFocalNet as Reference  # a checkout's test suite
    from video_focalnet import VARIANTS

    if options.get("design") not in (None, "parallel"):
        raise UsageError("--compare-reference: the reference only has the parallel design")
    return Reference(img_size=options["img_size"], num_classes=options["num_classes"],
                     num_frames=options["num_frames"], **VARIANTS[name.rsplit("_", 1)[-1]])


def _vita_clip_reference(name: str, model: nn.Module, options: dict) -> nn.Module:
    from tests.reference_vita import reference_from_model  # a checkout's test suite
    reference = reference_from_model(model)
    reference.input_layout = "BCTHW"  # the official Vita-CLIP input layout
    return reference


# family name -> builder of the line-by-line reference port (tests/reference_*.py). Only a
# checkout has tests/; the reference gets a strict copy of our model's weights.
REFERENCE_PORTS: dict[str, Callable[[str, nn.Module, dict], nn.Module]] = {
    "video_focalnet": _video_focalnet_reference,
    "vita_clip": _vita_clip_reference,
}


def _reference_port(family, name: str, model: nn.Module, options: dict) -> nn.Module | None:
    builder = REFERENCE_PORTS.get(family.name)
    if builder is None:
        return None
    if REPO_ROOT not in sys.path:
        sys.path.append(REPO_ROOT)  # tests/ is importable from a checkout only
    try:
        reference = builder(name, model, options)
    except ImportError as err:
        logger.warning("no reference port for %s (%s)", name, err)
        return None
    reference.load_state_dict(model.state_dict(), strict=True)
    return reference


def build_benchmark_models(name: str, num_frames: int, img_size: int, num_classes: int,
                           reference: bool, design: str | None = None
                           ) -> tuple[dict[str, nn.Module], tuple[int, ...]]:
    """``({"ours": model, "reference": port or absent}, clip shape (T, C, H, W))``; the two
    models hold identical weights (seeded, random)."""
    try:
        family = family_for_variant(name)
    except KeyError as err:
        raise UsageError(f"--model: {err.args[0]}") from None
    options = {"num_frames": num_frames, "img_size": img_size, "num_classes": num_classes}
    if design is not None:
        designs = tuple(getattr(family, "designs", ()))
        if design not in designs:
            raise UsageError(f"--design {design!r}: {name} has "
                             + (f"the designs {', '.join(designs)}" if designs else "no designs"))
        options["design"] = design
    torch.manual_seed(0)
    built = family.benchmark_models(name, batch_size=1, **options)
    models = {"ours": built["model"]}
    if reference:
        port = _reference_port(family, name, built["model"], options)
        if port is not None:
            models["reference"] = port
    return models, tuple(built["input"].shape[1:])


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def _autocast(device: str, dtype: str):
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=getattr(torch, dtype))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _model_input(model: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Our (B, T, C, H, W) video in the layout ``model`` takes (prepared outside the timing)."""
    if getattr(model, "input_layout", "BTCHW") == "BCTHW":
        return video.transpose(1, 2).contiguous()
    return video


def _make_step(model: nn.Module, mode: str, video: torch.Tensor, labels: torch.Tensor,
               device: str, dtype: str, optimizer=None) -> Callable[[], torch.Tensor]:
    """One timed iteration: ``infer`` (no-grad forward) or ``train`` (forward, loss, backward,
    and an optimiser step when one is given)."""
    video = _model_input(model, video)
    if mode == "infer":
        model.eval()
        # a model that scores against text: class features once per run, as the evaluator does
        text = class_text_features(model, torch.device(device),
                                   None if dtype == "float32" else getattr(torch, dtype))
        extra = {} if text is None else {"text_features": text}

        def step():
            with torch.inference_mode(), _autocast(device, dtype):
                return model(video, **extra)
    else:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            with _autocast(device, dtype):
                logits = model(video)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
            if optimizer is not None:
                optimizer.step()
            return logits.detach()
    return step


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_step(steps: dict[str, Callable], repeats: int, warmup: int, device: str
              ) -> dict[str, dict[str, float]]:
    """Interleaved timing of several step functions: min/median seconds, memory and the compile
    seconds spent in the warmup, per name. A compiled step always gets one warmup call."""
    clock = compile_clock()
    stats = {name: {"best_s": float("inf"), "best_cpu_s": float("inf"), "mem_before": 0.0,
                    "mem_after": 0.0, "times": [], "compile_s": 0.0} for name in steps}
    for name, step in steps.items():
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        stats[name]["mem_before"] = _peak_memory_mb(device)
        compile_before = clock.seconds
        for _ in range(max(warmup, 1 if name.startswith("compiled") else 0)):
            step()
        _sync(device)
        stats[name]["compile_s"] = clock.seconds - compile_before
        stats[name]["mem_after"] = _peak_memory_mb(device)
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            _sync(device)
            elapsed = time.perf_counter() - start
            stats[name]["times"].append(elapsed)
            stats[name]["best_s"] = min(stats[name]["best_s"], elapsed)
            stats[name]["best_cpu_s"] = min(stats[name]["best_cpu_s"],
                                            time.process_time() - start_cpu)
    for s in stats.values():
        s["median_s"] = statistics.median(s["times"]) if s["times"] else float("inf")
    return stats


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **kwargs) -> int:
    # Each gradient of a convolution (input, weight) costs exactly the multiply-adds of its
    # forward. torch's own formula treats the weight gradient of a grouped convolution as dense,
    # counting a depthwise convolution's C times over.
    from torch.utils.flop_counter import conv_flop_count
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def step_gflop(step: Callable) -> float:
    """Matrix-op GFLOP of one call of ``step``: matrix products, convolutions and attention,
    forward and backward, 2 FLOPs per multiply-add (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode
    fixed = {torch.ops.aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=fixed) as counter:
        step()
    return counter.get_total_flops() / 1e9


def roofline(device: str, dtype: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s this machine reaches, at the current thread count, for a large matrix product
    (2048^3) and a dense 3x3 convolution (128 -> 128 channels, 56x56, batch 8, channels last)
    in ``dtype``: the best of ``repeats`` after one warm-up."""
    kind = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2048, 2048, generator=gen).to(device, kind) for _ in range(2))
    x = torch.randn(8, 128, 56, 56, generator=gen).to(device, kind).contiguous(
        memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, generator=gen).to(device, kind).contiguous(
        memory_format=torch.channels_last)
    work = {"gemm_gflops_per_s": (lambda: a @ b, 2 * 2048 ** 3),
            "conv_gflops_per_s": (lambda: F.conv2d(x, w, padding=1),
                                  2 * 8 * 56 * 56 * 128 * 128 * 9)}
    rates = {}
    with torch.inference_mode():
        for name, (fn, flops) in work.items():
            fn()
            _sync(device)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                _sync(device)
                best = min(best, time.perf_counter() - start)
            rates[name] = round(flops / best / 1e9, 1)
    return rates


def profile_step(step: Callable, top: int) -> list[dict[str, Any]]:
    """The ``top`` ops by self CPU time in one call of ``step`` (torch.profiler, CPU activity)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 2), "calls": e.count,
             "percent": round(100.0 * e.self_cpu_time_total / total, 1)} for e in events[:top]]


def _compare_outputs(models: dict[str, nn.Module], video: torch.Tensor, device: str,
                     dtypes: list[str]) -> dict[str, Any]:
    """Same weights, same input: max |ours - reference| (float32) and top-1 agreement."""
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for m in models.values():
            m.eval()
        ref = models["reference"](_model_input(models["reference"], video)).float()
        for dtype in dtypes:
            with _autocast(device, dtype):
                ours = models["ours"](video).float()
            out[dtype] = {"max_abs_diff_vs_reference_fp32": float((ours - ref).abs().max()),
                          "top1_agreement_vs_reference_fp32":
                              float((ours.argmax(-1) == ref.argmax(-1)).float().mean())}
    return out


def _device(args) -> str:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                       else "cpu")
    if device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    return device


def _speedups(row: dict, stats: dict, best: dict, earlier: list[dict], dtype: str) -> None:
    """Speed-ups of ours over the reference at the same dtype and over its float32 row."""
    ref_f32 = [r for r in earlier if r["impl"] == "reference" and r["mode"] == row["mode"]
               and r["batch_size"] == row["batch_size"] and r["dtype"] == "float32"]
    for key, unit in (("best_s", "ms"), ("median_s", "median_ms"), ("best_cpu_s", "cpu_ms")):
        ref_now = stats["reference"][key]
        ref_fp32 = ref_now if dtype == "float32" or not ref_f32 else ref_f32[0][unit] / 1e3
        prefix = {"best_s": "", "median_s": "median_", "best_cpu_s": "cpu_"}[key]
        row[f"{prefix}speedup_vs_reference_same_dtype"] = round(ref_now / best[key], 3)
        row[f"{prefix}speedup_vs_reference_fp32"] = round(ref_fp32 / best[key], 3)


def _compile_columns(row: dict, stats: dict, s: dict) -> None:
    """A compiled variant's compile time, speed-up over eager (medians) and the iterations after
    which the compile time is paid back (None: never)."""
    row["compile_s"] = round(s["compile_s"], 1)
    eager = stats["ours"]["median_s"]
    row["speedup_vs_ours_eager"] = round(eager / s["median_s"], 3)
    saved = eager - s["median_s"]
    row["breakeven_iterations"] = round(s["compile_s"] / saved) if saved > 0 else None


def run_model_benchmark(args) -> dict[str, Any]:
    """In-process, interleaved timing of ours (and the reference) for every mode/batch/dtype."""
    device = _device(args)
    dtypes = args.dtypes or (["float32", "float16", "bfloat16"] if device == "cuda"
                             else ["float32", "bfloat16"])
    if device == "cpu" and "float16" in dtypes:
        raise UsageError("--dtypes float16 needs a GPU; on CPU use float32 or bfloat16")
    models, clip_shape = build_benchmark_models(args.model, args.num_frames, args.img_size,
                                                args.num_classes, args.compare_reference,
                                                args.design)
    for m in models.values():
        m.to(device)
    if getattr(args, "compile", None):
        # one wrapper per mode; every (mode, dtype, batch, train/infer) is its own graph
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        ours = models["ours"]
        models = {"ours": ours, **{f"compiled-{mode}": compile_model(ours, mode)
                                   for mode in args.compile},
                  **{k: v for k, v in models.items() if k != "ours"}}
    if args.compare_reference and "reference" not in models:
        print(f"note: no reference port for {args.model}; timing ours only", file=sys.stderr)
    repeats = args.repeats or 5
    result: dict[str, Any] = {"model": args.model, "design": args.design or "default",
                              "device": device, "threads": torch.get_num_threads(),
                              "num_frames": args.num_frames, "img_size": args.img_size,
                              "repeats": repeats, "runs": []}
    gen = torch.Generator().manual_seed(0)
    if "reference" in models:
        video = torch.randn(2, *clip_shape, generator=gen)
        result["agreement"] = _compare_outputs(models, video.to(device), device, dtypes)
    if getattr(args, "roofline", False):
        result["roofline"] = {dtype: roofline(device, dtype) for dtype in dtypes}
        if not args.json:
            for dtype, rates in result["roofline"].items():
                print(f"roofline {device} {dtype:<8} GEMM {rates['gemm_gflops_per_s']:.0f} "
                      f"GFLOP/s, 3x3 convolution {rates['conv_gflops_per_s']:.0f} GFLOP/s "
                      f"({torch.get_num_threads()} threads)", flush=True)
    for mode in args.modes:
        for batch in sorted(args.batch_sizes):
            video = torch.randn(batch, *clip_shape, generator=gen).to(device)
            labels = torch.randint(0, max(args.num_classes, 1), (batch,), generator=gen).to(device)
            work = None  # matrix work per impl: the same in every dtype, counted once
            for dtype in dtypes:
                steps = {name: _make_step(m, mode, video, labels, device, dtype)
                         for name, m in models.items()}
                if work is None:  # ours compiled or not: counted on the eager modules
                    work = {name: step_gflop(step) for name, step in steps.items()
                            if not name.startswith("compiled")}
                stats = time_step(steps, repeats, args.warmup, device)
                for name, s in stats.items():
                    row = {"impl": name, "mode": mode, "batch_size": batch, "dtype": dtype,
                           "ms": round(s["best_s"] * 1e3, 2),
                           "median_ms": round(s["median_s"] * 1e3, 2),
                           "cpu_ms": round(s["best_cpu_s"] * 1e3, 2),
                           "clips_per_s": round(batch / s["best_s"], 3),
                           "peak_mem_mb": round(s["mem_after"], 1),
                           "peak_mem_growth_mb": round(s["mem_after"] - s["mem_before"], 1)}
                    gflop = work.get(name, work["ours"])
                    # 4 significant digits: a tiny model on a loaded machine runs below 1 GFLOP/s
                    row.update(gflop=round(gflop, 2),
                               gflops_per_s=float(f"{gflop / s['best_s']:.4g}"))
                    if "roofline" in result:
                        peak = result["roofline"][dtype]["gemm_gflops_per_s"]
                        row["fraction_of_gemm_peak"] = round(row["gflops_per_s"] / peak, 3)
                    if name.startswith("compiled"):
                        _compile_columns(row, stats, s)
                    if name != "reference" and "reference" in stats:
                        _speedups(row, stats, s, result["runs"], dtype)
                    if getattr(args, "profile", 0):
                        row["profile"] = profile_step(steps[name], args.profile)
                    result["runs"].append(row)
                    if not args.json:
                        extra = "".join(f"  {k.replace('speedup_vs_reference_', 'x ref ')} "
                                        f"{row[k]:.2f}" for k in row if "speedup" in k)
                        if "compile_s" in row:
                            extra += f"  compile {row['compile_s']:.1f} s"
                        extra += f"  {row['gflops_per_s']:.0f} GFLOP/s"
                        if "fraction_of_gemm_peak" in row:
                            extra += f" ({100 * row['fraction_of_gemm_peak']:.0f}% of GEMM peak)"
                        print(f"{args.model} {name:<16} {mode:<5} batch {batch:<3} {dtype:<8} "
                              f"{row['clips_per_s']:8.2f} clips/s  {row['ms']:9.1f} ms "
                              f"(median {row['median_ms']:9.1f}, cpu {row['cpu_ms']:9.1f} ms)  "
                              f"peak {row['peak_mem_mb']:8.0f} MB{extra}", flush=True)
                        for op in row.get("profile", []):
                            print(f"    {op['percent']:5.1f}%  {op['self_ms']:9.1f} ms  "
                                  f"{op['calls']:6d}x  {op['op']}")
    return result


# ---------------------------------------------------------------------------------------------
# One measurement per process
# ---------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def measure_one(args) -> dict[str, Any]:
    """One (impl, mode, amp) measurement in this process: best step time, peak memory."""
    device = _device(args)
    batch = args.batch_sizes[0]
    models, clip_shape = build_benchmark_models(args.model, args.num_frames, args.img_size,
                                                args.num_classes, args.impl == "reference",
                                                args.design)
    if args.impl == "reference" and "reference" not in models:
        raise RuntimeError(f"no reference port for {args.model} in this checkout")
    model = models.pop(args.impl).to(device)
    models.clear()  # only the measured model stays in memory
    mode = "infer" if args.mode == "eval" else args.mode
    amp = args.amp if args.impl == "ours" else "off"
    video = torch.randn(batch, *clip_shape).to(device)
    labels = (torch.arange(batch) % max(args.num_classes, 1)).to(device)
    optimizer = None
    if mode == "train":
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=4e-4, weight_decay=0.05)
    base = _rss_mb()
    step = _make_step(model, mode, video, labels, device,
                      "bfloat16" if amp == "bf16" else "float32", optimizer)
    stats = time_step({args.impl: step}, args.repeats or 2, max(1, args.warmup), device)
    trainable, total = count_parameters(model)
    s = stats[args.impl]
    return {"impl": args.impl, "mode": args.mode, "amp": amp, "batch_size": batch,
            "sec": s["best_s"], "cpu_sec": s["best_cpu_s"],
            "peak_mb": _peak_memory_mb(device) - (0.0 if device == "cuda" else base),
            "model_mb": base, "trainable_params": trainable, "params": total}


def _parse_runs(text: str) -> list[tuple[str, str, str]]:
    runs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if (len(parts) != 3 or parts[0] not in ("ours", "reference")
                or parts[1] not in ("train", "eval", "infer") or parts[2] not in ("off", "bf16")):
            raise UsageError(f"--runs: {item!r} is not impl:mode:amp with impl ours|reference, "
                             f"mode train|eval, amp off|bf16")
        runs.append((parts[0], parts[1], parts[2]))
    return runs


def run_separate_processes(args) -> dict[str, Any]:
    """Every ``--runs`` entry (per batch size) measured by a fresh ``measure_one`` process."""
    common = ["--model", args.model, "--img-size", str(args.img_size), "--num-frames",
              str(args.num_frames), "--num-classes", str(args.num_classes), "--threads",
              str(args.threads), "--repeats", str(args.repeats or 2), "--warmup",
              str(max(1, args.warmup)), "--device", args.device]
    if args.design is not None:
        common += ["--design", args.design]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    results = []
    for batch in sorted(args.batch_sizes):
        for impl, mode, amp in _parse_runs(args.runs):
            cmd = [sys.executable, "-m", "tools.workflows.benchmark", "--impl", impl, "--mode",
                   mode, "--amp", amp, "--batch-sizes", str(batch)] + common
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
            if out.returncode != 0:
                raise RuntimeError(f"measurement {impl}:{mode}:{amp} failed:\n"
                                   f"{out.stderr.strip()[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(result)
            if not args.json:
                print(f"{impl:9s} {mode:5s} amp={amp:4s} batch {batch:<3} {result['sec']:8.2f} "
                      f"s/step wall {result['cpu_sec']:8.2f} s/step CPU  peak "
                      f"+{result['peak_mb']:6.0f} MB (model {result['model_mb']:.0f} MB)",
                      flush=True)
    if not args.json:
        ref = {(r["mode"], r["batch_size"]): r for r in results if r["impl"] == "reference"}
        for r in results:
            base = ref.get((r["mode"], r["batch_size"]))
            if r["impl"] == "ours" and base is not None:
                print(f"ours {r['mode']} amp={r['amp']} batch {r['batch_size']}: "
                      f"{base['sec'] / r['sec']:.2f}x faster (wall), "
                      f"{base['cpu_sec'] / r['cpu_sec']:.2f}x less CPU time, peak memory "
                      f"{r['peak_mb'] / max(base['peak_mb'], 1):.2f}x of the reference")
    return {"model": args.model, "design": args.design or "default", "separate_processes": True,
            "runs": results}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--model", default="video_focalnet_tiny",
                        help="a registered variant, e.g. video_focalnet_{tiny,small,base}, "
                             "vita_clip_b16")
    parser.add_argument("--design", default=None,
                        help="a design of the model's family (Video-FocalNet: its ST design)")
    parser.add_argument("--batch-sizes", "--batch", type=int, nargs="+", default=None,
                        help="default: 1 8 (in-process), 2 (--runs)")
    parser.add_argument("--dtypes", nargs="+", default=None,
                        choices=["float32", "bfloat16", "float16"],
                        help="default: float32 bfloat16 (CPU); float32 float16 bfloat16 (GPU)")
    parser.add_argument("--modes", nargs="+", default=["infer", "train"],
                        choices=["infer", "train"])
    parser.add_argument("--num-frames", "--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", "--classes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", "--steps", type=int, default=None,
                        help="timed iterations, the best is kept (default 5; 2 with --runs)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--compare-reference", action="store_true",
                        help="interleave the line-by-line reference port (same weights)")
    parser.add_argument("--runs", nargs="?", const=DEFAULT_RUNS, default=None,
                        metavar="IMPL:MODE:AMP,...",
                        help="measure each entry in its own process (default list: "
                             f"{DEFAULT_RUNS})")
    parser.add_argument("--impl", choices=["ours", "reference"],
                        help="(internal to --runs) one measurement in this process, as JSON")
    parser.add_argument("--mode", choices=["train", "eval", "infer"], default="train",
                        help="with --impl: the step measured")
    parser.add_argument("--amp", choices=["off", "bf16"], default="off",
                        help="with --impl: bf16 autocast for ours")
    parser.add_argument("--compile", nargs="+", default=[],
                        choices=["default", "reduce-overhead", "max-autotune"],
                        help="also time our model under torch.compile in these modes")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="per variant, the N ops with the most self CPU time")
    parser.add_argument("--roofline", action="store_true",
                        help="also measure the machine's GEMM and convolution GFLOP/s (the "
                             "ceiling) and report each step's fraction of it")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--loader", action="store_true",
                        help="benchmark the data loader instead: the harness of "
                             "python -m datasets.benchmark (decode and augmentation per clip, "
                             "interleaved, wall and CPU time)")
    parser.add_argument("--loader-iters", type=int, default=30,
                        help="clips per video and sampling")
    parser.add_argument("--loader-baseline", default="", metavar="REV",
                        help="also run the datasets package of this git revision")
    parser.add_argument("--loader-ops", action="store_true",
                        help="profile the augmentation per operator instead")
    parser.add_argument("--loader-json", default="", help="also write loader numbers here")
    args = parser.parse_args(argv)
    if args.batch_sizes is None:
        args.batch_sizes = [2] if (args.runs or args.impl) else [1, 8]
    return args


def _run(args) -> int:
    if args.impl:
        print(json.dumps(measure_one(args)))
        return 0
    if args.loader:
        from datasets.benchmark import run_loader_benchmark
        result = run_loader_benchmark(argparse.Namespace(
            num_iters=args.loader_iters, json=args.loader_json, baseline=args.loader_baseline,
            ops=args.loader_ops))
    elif args.runs:
        result = run_separate_processes(args)
    else:
        result = run_model_benchmark(args)
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


def _run_logged(args) -> int:
    logging.basicConfig(level=logging.WARNING)
    return _run(args)


main = make_main(parse_args, _run_logged)


if __name__ == "__main__":
    sys.exit(main())
