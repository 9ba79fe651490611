"""Inference speed under the runtimes (ONNX Runtime, OpenVINO; on a GPU also TensorRT and ONNX
Runtime's CUDA provider), interleaved with our eager model and the line-by-line reference port.

    python tools/benchmark.py --runtimes onnxruntime openvino --model video_focalnet_tiny \\
        [--num-frames 8 --img-size 224 --batch-sizes 1 --threads 2 --repeats 5] [--memory] [--json]
    python tools/benchmark.py --runtimes onnxruntime tensorrt --device cuda ...  # gpu_check

The model is the family's benchmark model (seeded random weights; benchmark/models.py
``build_benchmark_models``), exported with engine/export.py into a temporary folder. One round
runs every implementation once, in turn (``reference``, ``eager``, then each runtime), so all see
the same machine load; the best (``ms``) and median (``median_ms``) of ``--repeats`` rounds after
``--warmup`` are kept, with the speed-ups over the reference and over our eager model. A model
that scores videos against text runs as the evaluator runs it: class text features computed
once outside the timing (eager) or built into the graph (runtimes). Every row has the largest
difference of its logits from eager's. ``--memory`` measures each implementation again in a
fresh process: its peak resident memory above the process' size before the model was loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from engine.evaluation import class_text_features
from tools._cli import UsageError, make_main, new_parser

from .revision import REPO_ROOT

__all__ = ["run_runtime_benchmark", "parse_args", "main"]

RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "onnxruntime-cuda")


def _models(args):
    from tools.workflows.benchmark.models import build_benchmark_models
    models, shape = build_benchmark_models(args.model, args.frames, args.img_size, args.classes,
                                           reference=not args.no_reference)
    video = torch.randn((args.batch, *shape), generator=torch.Generator().manual_seed(0))
    return models, video


def _export(ours, video: torch.Tensor, folder: str, runtimes, device: str) -> dict[str, str]:
    """The files each runtime runs, exported from ``ours`` into ``folder``."""
    from engine.export import ExportGraph, convert_to_openvino, convert_to_tensorrt, export_onnx
    graph = ExportGraph(ours)
    example = torch.cat([video[:1], video[:1]])  # batch 2: the exported batch stays dynamic
    files = {"onnx": os.path.join(folder, "model.onnx")}
    export_onnx(graph, example, files["onnx"])
    if "openvino" in runtimes:
        files["openvino"] = os.path.join(folder, "model.xml")
        convert_to_openvino(files["onnx"], files["openvino"])
    if "tensorrt" in runtimes:
        files["tensorrt"] = os.path.join(folder, "model.engine")
        convert_to_tensorrt(files["onnx"], files["tensorrt"])
    return files


def _runtime_model(runtime: str, files: dict, threads: int):
    from engine.runtime import RuntimeModel
    if runtime == "onnxruntime-cuda":
        return RuntimeModel(files["onnx"], "onnxruntime", threads, device="cuda", meta={})
    model_file = files["onnx"] if runtime == "onnxruntime" else files[runtime]
    return RuntimeModel(model_file, runtime, threads, meta={})


def _step(name: str, model, video: torch.Tensor, device: str):
    """A no-grad inference of ``model`` on ``video`` (input prepared outside the timing)."""
    if name in ("eager", "reference"):
        model = model.to(device).eval()
        if getattr(model, "input_layout", "BTCHW") == "BCTHW":
            video = video.transpose(1, 2).contiguous()
        text = class_text_features(model, torch.device(device))
        extra = {} if text is None else {"text_features": text}
    else:
        extra = {}
    video = video.to(device)

    def step():
        with torch.inference_mode():
            out = model(video, **extra)
        if device == "cuda":
            torch.cuda.synchronize()
        return out
    return step


def _implementations(args, folder: str) -> tuple[dict, torch.Tensor]:
    models, video = _models(args)
    impls = {}
    if "reference" in models:
        impls["reference"] = models["reference"]
    impls["eager"] = models["ours"]
    if args.runtimes:
        files = _export(models["ours"].eval(), video, folder, args.runtimes, args.device)
        for runtime in args.runtimes:
            impls[runtime] = _runtime_model(runtime, files, args.threads)
    return impls, video


def run_runtime_benchmark(args) -> dict:
    """Interleaved timing of every implementation; returns {"rows": [...], "settings": ...}."""
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as folder:
        impls, video = _implementations(args, folder)
        steps = {name: _step(name, model, video, args.device) for name, model in impls.items()}
        outputs = {name: step().float().cpu() for name, step in steps.items()}  # first warmup
        times = {name: [] for name in steps}
        for round_ in range(args.warmup - 1 + args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                if round_ >= args.warmup - 1:
                    times[name].append(time.perf_counter() - start)
        memory = _memory(args, folder) if args.memory else {}
    rows = []
    for name, seconds in times.items():
        # 4 significant digits: a tiny model's step can take under a millisecond
        row = {"impl": name, "ms": float(f"{1000 * min(seconds):.4g}"),
               "median_ms": float(f"{1000 * statistics.median(seconds):.4g}"),
               "max_abs_diff_vs_eager": float((outputs[name] - outputs["eager"]).abs().max())}
        for base in ("reference", "eager"):
            if base in times and name != base:
                row[f"speedup_vs_{base}"] = round(min(times[base]) / min(seconds), 3)
                row[f"median_speedup_vs_{base}"] = round(
                    statistics.median(times[base]) / statistics.median(seconds), 3)
        row.update(memory.get(name, {}))
        rows.append(row)
    return {"settings": {"model": args.model, "frames": args.frames, "img_size": args.img_size,
                         "batch": args.batch, "threads": torch.get_num_threads(),
                         "device": args.device, "repeats": args.repeats,
                         "torch": torch.__version__}, "rows": rows}


def _rss_mb() -> float:
    """Peak resident memory of this process so far (MB): /proc's VmHWM, which starts afresh
    at exec (ru_maxrss keeps the parent's peak across fork + exec on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure_memory(args) -> dict:
    """(child process) Peak resident memory of one implementation: ``peak_mb`` above the size
    before its model was built or loaded, ``run_mb`` above the size once it was loaded."""
    if args.threads:
        torch.set_num_threads(args.threads)
    before = _rss_mb()
    impl = args.memory_of
    if impl in ("eager", "reference"):
        models, video = _models(args)
        model = models["ours" if impl == "eager" else "reference"]
    else:
        video = torch.randn((args.batch, args.frames, 3, args.img_size, args.img_size))
        files = {"onnx": os.path.join(args.export_dir, "model.onnx"),
                 "openvino": os.path.join(args.export_dir, "model.xml"),
                 "tensorrt": os.path.join(args.export_dir, "model.engine")}
        model = _runtime_model(impl, files, args.threads)
    step = _step(impl, model, video, args.device)
    loaded = _rss_mb()
    for _ in range(2):
        step()
    peak = _rss_mb()
    return {"peak_mb": round(peak - before, 1), "run_mb": round(peak - loaded, 1)}


def _memory(args, folder: str) -> dict:
    out = {}
    names = (["reference"] if not args.no_reference else []) + ["eager"] + list(args.runtimes)
    for name in names:
        cmd = [sys.executable, "-m", "tools.workflows.benchmark.runtimes", "--memory-of", name,
               "--export-dir", folder, "--model", args.model, "--num-frames", str(args.frames),
               "--img-size", str(args.img_size), "--num-classes", str(args.classes),
               "--batch-sizes", str(args.batch), "--threads", str(args.threads),
               "--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=str(REPO_ROOT))
        if done.returncode == 0:
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            out[name] = {"memory_error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--runtimes", nargs="*", default=["onnxruntime", "openvino"],
                        choices=RUNTIMES, help="runtimes timed beside eager and the reference")
    parser.add_argument("--model", default="video_focalnet_tiny")
    # the flags of the model harness (one name per meaning), one value each here
    parser.add_argument("--num-frames", dest="frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", dest="classes", type=int, default=400)
    parser.add_argument("--batch-sizes", dest="batch", type=int, default=1, metavar="BATCH_SIZE",
                        help="one batch size")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (at least 1)")
    parser.add_argument("--no-reference", action="store_true", help="leave the reference out")
    parser.add_argument("--memory", action="store_true",
                        help="also each implementation's peak memory, in its own process")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.warmup = max(1, args.warmup)
    return args


def _print_table(result: dict) -> None:
    s = result["settings"]
    print(f"{s['model']} inference, batch {s['batch']} x {s['frames']}x{s['img_size']}, "
          f"float32, {s['threads']} threads, {s['device']} (best / median of {s['repeats']})")
    for row in result["rows"]:
        extra = "".join(f"  x{row[k]:.2f} (median x{row['median_' + k]:.2f}) vs "
                        f"{k.rsplit('_', 1)[-1]}" for k in ("speedup_vs_reference",
                                                            "speedup_vs_eager") if k in row)
        memory = f"  peak {row['peak_mb']:.0f} MB" if "peak_mb" in row else ""
        print(f"  {row['impl']:<17} {row['ms']:>9.1f} ms  median {row['median_ms']:>9.1f} ms"
              f"  |diff| {row['max_abs_diff_vs_eager']:.1e}{extra}{memory}")


def _run(args) -> int:
    if args.memory_of:
        print(json.dumps(_measure_memory(args)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here")
    result = run_runtime_benchmark(args)
    print(json.dumps(result, indent=1)) if args.json else _print_table(result)
    return 0


main = make_main(parse_args, _run)


if __name__ == "__main__":
    sys.exit(main())
