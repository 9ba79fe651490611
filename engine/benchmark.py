"""Model speed: clips/s for inference and for a training step (forward + backward), per batch
size and precision, optionally interleaved with the line-by-line reference port.

    python tools/benchmark.py --model video_focalnet_tiny [--batch-sizes 1 8] [--threads 2]
        [--dtypes float32 bfloat16] [--modes infer train] [--compare-reference]
        [--compile default max-autotune] [--profile 15] [--json]
    python tools/benchmark.py --loader            # data loader throughput (datasets.benchmark)

Timing: every measurement is the minimum (``ms``) and the median (``median_ms``) over
``--repeats`` single iterations after ``--warmup`` untimed ones; ours, each ``--compile`` mode
(``compiled-<mode>``, the same module under torch.compile) and, with ``--compare-reference``,
the reference alternate iteration by iteration, so all see the same machine load. A compiled
variant compiles during its first warmup iteration; that time is reported as ``compile_s``
(engine.compile's clock), never inside an iteration time. ``--profile N`` adds, per variant, the
N ops with the most self CPU time in one extra iteration (torch.profiler). Besides wall-clock time, the process
CPU time of the iteration is recorded (``cpu_ms``; all threads summed): on a shared machine it is
the steadier number, especially with ``--threads 1``. CPU precisions: float32 and bfloat16
autocast; GPU: float32, float16 and bfloat16 autocast. Peak memory: CUDA allocator peak on GPU;
on CPU the growth of the process' peak resident set (``ru_maxrss``) during the measurement, which
only shows what exceeds earlier peaks (runs go from small to large to keep it meaningful).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import statistics
import sys
import time
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = ["build_benchmark_models", "time_step", "profile_step", "run_model_benchmark",
           "parse_args", "main"]


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def build_benchmark_models(name: str, num_frames: int, img_size: int, num_classes: int,
                           reference: bool, design: str = "parallel") -> dict[str, nn.Module]:
    """``{"ours": model, "reference": port or absent}`` with identical weights."""
    import timm

    if name.startswith("video_focalnet"):
        import video_focalnet  # noqa: F401  (registers the names)
        torch.manual_seed(0)
        ours = timm.create_model(name, num_frames=num_frames, img_size=img_size,
                                 num_classes=num_classes, st_design=design)
        models = {"ours": ours}
        if reference:
            if design != "parallel":
                raise ValueError("--compare-reference: the reference only has the parallel design")
            from tests.reference_vfn import VideoFocalNet as Reference
            size = name.rsplit("_", 1)[-1]
            ref = Reference(img_size=img_size, num_classes=num_classes, num_frames=num_frames,
                            **video_focalnet.VARIANTS[size])
            ref.load_state_dict(ours.state_dict(), strict=True)
            models["reference"] = ref
        return models
    if name.startswith("vita_clip"):
        from vita_clip.build import benchmark_setup
        setup = benchmark_setup(num_frames=num_frames, num_classes=num_classes,
                                img_size=img_size, reference=reference)
        models = {"ours": setup["model"]}
        if reference and setup.get("reference") is not None:
            models["reference"] = setup["reference"]
            models["reference"].input_layout = "BCTHW"  # the official Vita-CLIP layout
        return models
    raise ValueError(f"--model {name!r}: use video_focalnet_{{tiny,small,base}} or vita_clip_b16")


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
               device: str, dtype: str) -> Callable[[], torch.Tensor]:
    video = _model_input(model, video)
    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), _autocast(device, dtype):
                return model(video)
    else:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            with _autocast(device, dtype):
                logits = model(video)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
            return logits.detach()
    return step


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_step(steps: dict[str, Callable], repeats: int, warmup: int, device: str
              ) -> dict[str, dict[str, float]]:
    """Interleaved timing of several step functions: min/median seconds, memory and compile
    seconds (spent in the warmup) per name. A compiled step always gets one warmup call."""
    from .compile import compile_clock
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


def profile_step(step: Callable, top: int) -> list[dict[str, Any]]:
    """The `top` ops by self CPU time in one call of `step` (torch.profiler, CPU activity)."""
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


def run_model_benchmark(args) -> dict[str, Any]:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                       else "cpu")
    if device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    dtypes = args.dtypes or (["float32", "float16", "bfloat16"] if device == "cuda"
                             else ["float32", "bfloat16"])
    if device == "cpu" and "float16" in dtypes:
        raise ValueError("--dtypes float16 needs a GPU; on CPU use float32 or bfloat16")
    models = build_benchmark_models(args.model, args.num_frames, args.img_size,
                                    args.num_classes, args.compare_reference, args.design)
    for m in models.values():
        m.to(device)
    if args.compile:
        from .compile import compile_model
        # one wrapper per mode; every (mode, dtype, batch, train/infer) is its own graph
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        ours = models["ours"]
        models = {"ours": ours, **{f"compiled-{mode}": compile_model(ours, mode)
                                   for mode in args.compile},
                  **{k: v for k, v in models.items() if k != "ours"}}
    if args.compare_reference and "reference" not in models:
        print(f"note: no reference port for {args.model}; timing ours only", file=sys.stderr)
    result: dict[str, Any] = {"model": args.model, "design": args.design, "device": device,
                              "threads": torch.get_num_threads(), "num_frames": args.num_frames,
                              "img_size": args.img_size, "repeats": args.repeats, "runs": []}
    gen = torch.Generator().manual_seed(0)
    if "reference" in models:
        video = torch.randn(2, args.num_frames, 3, args.img_size, args.img_size, generator=gen)
        result["agreement"] = _compare_outputs(models, video.to(device), device, dtypes)
    for mode in args.modes:
        for batch in sorted(args.batch_sizes):
            video = torch.randn(batch, args.num_frames, 3, args.img_size, args.img_size,
                                generator=gen).to(device)
            labels = torch.randint(0, max(args.num_classes, 1), (batch,), generator=gen).to(device)
            for dtype in dtypes:
                steps = {name: _make_step(m, mode, video, labels, device, dtype)
                         for name, m in models.items()}
                stats = time_step(steps, args.repeats, args.warmup, device)
                for name, s in stats.items():
                    row = {"impl": name, "mode": mode, "batch_size": batch, "dtype": dtype,
                           "ms": round(s["best_s"] * 1e3, 2),
                           "median_ms": round(s["median_s"] * 1e3, 2),
                           "cpu_ms": round(s["best_cpu_s"] * 1e3, 2),
                           "clips_per_s": round(batch / s["best_s"], 3),
                           "peak_mem_mb": round(s["mem_after"], 1),
                           "peak_mem_growth_mb": round(s["mem_after"] - s["mem_before"], 1)}
                    if name.startswith("compiled"):
                        row["compile_s"] = round(s["compile_s"], 1)
                        eager = stats["ours"]["median_s"]
                        row["speedup_vs_ours_eager"] = round(eager / s["median_s"], 3)
                        # iterations after which the compile time is paid back (inf: never)
                        saved = eager - s["median_s"]
                        row["breakeven_iterations"] = (round(s["compile_s"] / saved)
                                                       if saved > 0 else None)
                    if name != "reference" and "reference" in stats:
                        ref_f32 = [r for r in result["runs"] if r["impl"] == "reference"
                                   and r["mode"] == mode and r["batch_size"] == batch
                                   and r["dtype"] == "float32"]
                        for key, unit in (("best_s", "ms"), ("median_s", "median_ms"),
                                          ("best_cpu_s", "cpu_ms")):
                            ref_now = stats["reference"][key]
                            ref_fp32 = (ref_now if dtype == "float32" or not ref_f32
                                        else ref_f32[0][unit] / 1e3)
                            prefix = {"best_s": "", "median_s": "median_",
                                      "best_cpu_s": "cpu_"}[key]
                            row[f"{prefix}speedup_vs_reference_same_dtype"] = round(
                                ref_now / s[key], 3)
                            row[f"{prefix}speedup_vs_reference_fp32"] = round(
                                ref_fp32 / s[key], 3)
                    if args.profile:
                        row["profile"] = profile_step(steps[name], args.profile)
                    result["runs"].append(row)
                    if not args.json:
                        extra = "".join(f"  {k.replace('speedup_vs_reference_', 'x ref ')} "
                                        f"{row[k]:.2f}" for k in row if "speedup" in k)
                        if "compile_s" in row:
                            extra += f"  compile {row['compile_s']:.1f} s"
                        print(f"{args.model} {name:<16} {mode:<5} batch {batch:<3} {dtype:<8} "
                              f"{row['clips_per_s']:8.2f} clips/s  {row['ms']:9.1f} ms "
                              f"(median {row['median_ms']:9.1f}, cpu {row['cpu_ms']:9.1f} ms)  "
                              f"peak {row['peak_mem_mb']:8.0f} MB{extra}", flush=True)
                        for op in row.get("profile", []):
                            print(f"    {op['percent']:5.1f}%  {op['self_ms']:9.1f} ms  "
                                  f"{op['calls']:6d}x  {op['op']}")
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="video_focalnet_tiny",
                        help="registered name: video_focalnet_{tiny,small,base}, vita_clip_b16")
    parser.add_argument("--design", default="parallel", help="Video-FocalNet ST design")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", default=None,
                        choices=["float32", "bfloat16", "float16"],
                        help="default: float32 bfloat16 (CPU); float32 float16 bfloat16 (GPU)")
    parser.add_argument("--modes", nargs="+", default=["infer", "train"],
                        choices=["infer", "train"])
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations (min is kept)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--compare-reference", action="store_true",
                        help="interleave the line-by-line reference port (same weights)")
    parser.add_argument("--compile", nargs="+", default=[],
                        choices=["default", "reduce-overhead", "max-autotune"],
                        help="also time our model under torch.compile in these modes")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="per variant, the N ops with the most self CPU time")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--loader", action="store_true",
                        help="benchmark the data loader instead (datasets.benchmark)")
    parser.add_argument("--loader-iters", type=int, default=20)
    parser.add_argument("--loader-json", default="", help="also write loader numbers here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if args.loader:
            from datasets.benchmark import run_loader_benchmark
            result = run_loader_benchmark(argparse.Namespace(
                num_iters=args.loader_iters, json=args.loader_json, decoders=None,
                samplings=None))
        else:
            result = run_model_benchmark(args)
    except (ValueError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    return 0
