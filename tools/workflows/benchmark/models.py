"""Model timing in one process: ours, ours compiled and the reference port, interleaved.

Every measurement is the minimum (``ms``) and the median (``median_ms``) over ``repeats`` single
iterations after ``warmup`` untimed ones; the variants alternate iteration by iteration, so all see
the same machine load. A compiled variant compiles during its first warmup iteration; that time is
reported as ``compile_s`` (engine.compile's clock), never inside an iteration time. Each row also
has the process CPU time of its best iteration (``cpu_ms``, all threads summed: on a shared
machine the steadier number), the step's matrix work (``gflop``, see ``machine.step_gflop``) and
its rate, and with a roofline the fraction of the machine's GEMM rate.

A model that scores videos against text (it has ``encode_text``) is timed in inference as the
engine's evaluator runs it: class features computed once, outside the timing.

``ROW_PROVIDERS`` is the hook for other runtimes (an exported graph, another engine): each is
called as ``provider(args, models, result)`` after the eager rows and returns more rows.
"""
from __future__ import annotations

import contextlib
import logging
import resource
import statistics
import sys
import time
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.compile import compile_clock, compile_model
from engine.evaluation import class_text_features
from engine.registry import family_for_variant
from tools._cli import UsageError

from .machine import profile_step, roofline, step_gflop, sync
from .revision import REPO_ROOT

logger = logging.getLogger(__name__)

__all__ = ["REFERENCE_PORTS", "ROW_PROVIDERS", "build_benchmark_models", "make_step", "time_step",
           "peak_memory_mb", "select_device", "run_model_benchmark"]



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

# provider(args, models, result) -> list of rows; see the module docstring
ROW_PROVIDERS: list[Callable[[Any, dict, dict], list[dict]]] = []


def _reference_port(family, name: str, model: nn.Module, options: dict) -> nn.Module | None:
    builder = REFERENCE_PORTS.get(family.name)
    if builder is None:
        return None
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))  # tests/ is importable from a checkout only
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
# Steps and timing
# ---------------------------------------------------------------------------------------------
def _autocast(device: str, dtype: str):
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=getattr(torch, dtype))


def model_input(model: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Our (B, T, C, H, W) video in the layout ``model`` takes (prepared outside the timing)."""
    if getattr(model, "input_layout", "BTCHW") == "BCTHW":
        return video.transpose(1, 2).contiguous()
    return video


def make_step(model: nn.Module, mode: str, video: torch.Tensor, labels: torch.Tensor,
              device: str, dtype: str, optimizer=None) -> Callable[[], torch.Tensor]:
    """One timed iteration: ``infer`` (no-grad forward) or ``train`` (forward, loss, backward,
    and an optimiser step when one is given)."""
    video = model_input(model, video)
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


def peak_memory_mb(device: str) -> float:
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
        stats[name]["mem_before"] = peak_memory_mb(device)
        compile_before = clock.seconds
        for _ in range(max(warmup, 1 if name.startswith("compiled") else 0)):
            step()
        sync(device)
        stats[name]["compile_s"] = clock.seconds - compile_before
        stats[name]["mem_after"] = peak_memory_mb(device)
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            sync(device)
            elapsed = time.perf_counter() - start
            stats[name]["times"].append(elapsed)
            stats[name]["best_s"] = min(stats[name]["best_s"], elapsed)
            stats[name]["best_cpu_s"] = min(stats[name]["best_cpu_s"],
                                            time.process_time() - start_cpu)
    for s in stats.values():
        s["median_s"] = statistics.median(s["times"]) if s["times"] else float("inf")
    return stats


def _compare_outputs(models: dict[str, nn.Module], video: torch.Tensor, device: str,
                     dtypes: list[str]) -> dict[str, Any]:
    """Same weights, same input: max |ours - reference| (float32) and top-1 agreement."""
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for m in models.values():
            m.eval()
        ref = models["reference"](model_input(models["reference"], video)).float()
        for dtype in dtypes:
            with _autocast(device, dtype):
                ours = models["ours"](video).float()
            out[dtype] = {"max_abs_diff_vs_reference_fp32": float((ours - ref).abs().max()),
                          "top1_agreement_vs_reference_fp32":
                              float((ours.argmax(-1) == ref.argmax(-1)).float().mean())}
    return out


def select_device(device: str, threads: int) -> str:
    """``auto`` -> cuda where available; sets the CPU thread count (0: torch's default)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
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


def print_row(model: str, row: dict) -> None:
    extra = "".join(f"  {k.replace('speedup_vs_reference_', 'x ref ')} {row[k]:.2f}"
                    for k in row if "speedup" in k)
    if "compile_s" in row:
        extra += f"  compile {row['compile_s']:.1f} s"
    if "gflops_per_s" in row:
        extra += f"  {row['gflops_per_s']:.0f} GFLOP/s"
    if "fraction_of_gemm_peak" in row:
        extra += f" ({100 * row['fraction_of_gemm_peak']:.0f}% of GEMM peak"
        if "cpu_fraction_of_gemm_peak" in row:
            extra += f"; {100 * row['cpu_fraction_of_gemm_peak']:.0f}% in CPU time"
        extra += ")"
    print(f"{model} {row['impl']:<16} {row['mode']:<5} batch {row['batch_size']:<3} "
          f"{row['dtype']:<8} {row['clips_per_s']:8.2f} clips/s  {row['ms']:9.1f} ms "
          f"(median {row['median_ms']:9.1f}, cpu {row['cpu_ms']:9.1f} ms)  "
          f"peak {row['peak_mem_mb']:8.0f} MB{extra}", flush=True)
    for op in row.get("profile", []):
        print(f"    {op['percent']:5.1f}%  {op['self_ms']:9.1f} ms  {op['calls']:6d}x  {op['op']}")


def run_model_benchmark(args, machine: dict) -> dict[str, Any]:
    """In-process, interleaved timing of ours (and the reference) for every mode/batch/dtype."""
    device = select_device(args.device, args.threads)
    dtypes = args.dtypes or (["float32", "float16", "bfloat16"] if device == "cuda"
                             else ["float32", "bfloat16"])
    if device == "cpu" and "float16" in dtypes:
        raise UsageError("--dtypes float16 needs a GPU; on CPU use float32 or bfloat16")
    models, clip_shape = build_benchmark_models(args.model, args.num_frames, args.img_size,
                                                args.num_classes, args.compare_reference,
                                                args.design)
    for m in models.values():
        m.to(device)
    if args.compile:
        # one wrapper per mode; every (mode, dtype, batch, train/infer) is its own graph
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        ours = models["ours"]
        models = {"ours": ours, **{f"compiled-{mode}": compile_model(ours, mode)
                                   for mode in args.compile},
                  **{k: v for k, v in models.items() if k != "ours"}}
    if args.compare_reference and "reference" not in models:
        print(f"note: no reference port for {args.model}; timing ours only", file=sys.stderr)
    result: dict[str, Any] = {"model": args.model, "design": args.design or "default",
                              "device": device, "machine": machine,
                              "threads": torch.get_num_threads(),
                              "num_frames": args.num_frames, "img_size": args.img_size,
                              "num_classes": args.num_classes, "repeats": args.repeats,
                              "runs": []}
    gen = torch.Generator().manual_seed(0)
    if "reference" in models:
        video = torch.randn(2, *clip_shape, generator=gen)
        result["agreement"] = _compare_outputs(models, video.to(device), device, dtypes)
    if args.roofline:
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
                steps = {name: make_step(m, mode, video, labels, device, dtype)
                         for name, m in models.items()}
                if work is None:  # ours compiled or not: counted on the eager modules
                    work = {name: step_gflop(step) for name, step in steps.items()
                            if not name.startswith("compiled")}
                stats = time_step(steps, args.repeats, args.warmup, device)
                for name, s in stats.items():
                    row = {"impl": name, "mode": mode, "batch_size": batch, "dtype": dtype,
                           "isa": machine["torch_dispatch"],
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
                    if device == "cpu":  # the rate over CPU time per thread (see machine.py)
                        row["cpu_gflops_per_s"] = float(
                            f"{gflop / (s['best_cpu_s'] / result['threads']):.4g}")
                    if "roofline" in result:
                        rates = result["roofline"][dtype]
                        row["fraction_of_gemm_peak"] = round(
                            row["gflops_per_s"] / rates["gemm_gflops_per_s"], 3)
                        if "cpu_gflops_per_s" in row:
                            row["cpu_fraction_of_gemm_peak"] = round(
                                row["cpu_gflops_per_s"] / rates["gemm_cpu_gflops_per_s"], 3)
                    if name.startswith("compiled"):
                        _compile_columns(row, stats, s)
                    if name != "reference" and "reference" in stats:
                        _speedups(row, stats, s, result["runs"], dtype)
                    if args.profile:
                        row["profile"] = profile_step(steps[name], args.profile)
                    result["runs"].append(row)
                    if not args.json:
                        print_row(args.model, row)
    for provider in ROW_PROVIDERS:
        result["runs"].extend(provider(args, models, result))
    return result
