"""Everything that needs a GPU, in one command; run through ``bash scripts/gpu_check.sh``.

    bash scripts/gpu_check.sh [--quick] [--out DIR] [--budget-s SECONDS]

1. the test suite's GPU-marked tests (tests/e2e/test_gpu.py: training steps of both models in
   float32 / fp16 with the grad scaler / bf16, checkpoint save and resume, GPU evaluation equal to
   CPU evaluation, the loader with pinned memory and workers, torchrun + NCCL scoring every video
   exactly once; a TensorRT engine against eager where tensorrt is installed);
2. ``tools/benchmark.py`` on the GPU: Video-FocalNet-T/S/B and Vita-CLIP, inference and training
   step, float32 / float16 / bfloat16, interleaved with the reference ports, and compiled when
   that benchmark offers ``--compile``; in priority order until the time budget (default 450 s
   for the whole check, under 8 minutes on one GPU) runs out, the rest reported as skipped;
3. the runtime rows (``tools/benchmark.py --runtimes``): Video-FocalNet-T exported and run under
   TensorRT and ONNX Runtime's CUDA provider beside eager on the GPU, each where its package is
   installed (``tensorrt``, ``onnxruntime-gpu``; not pinned), else reported as skipped.

Writes DIR/gpu_report.json (every check with status passed | failed | skipped, seconds and a
message; the benchmark numbers) and DIR/gpu_summary.txt (the same as tables), and prints the
summary. On a machine without CUDA everything GPU-only is reported as skipped and the exit status
is 0, so CI keeps the script working; the status is 1 when any check failed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GPU_TESTS = "tests/e2e/test_gpu.py"
REPORT_SCHEMA = 1

# (model, batch size): Vita-CLIP at the released setting (400 class-specific text contexts) runs
# batch 2, as the CPU measurements; Video-FocalNet batch 8.
FULL_BENCHMARKS = [("video_focalnet_tiny", 8), ("vita_clip_b16", 2), ("video_focalnet_small", 8),
                   ("video_focalnet_base", 8)]
QUICK_BENCHMARKS = [("video_focalnet_tiny", 2)]
MIN_BENCHMARK_SECONDS = 30  # below this much budget left, the remaining benchmarks are skipped


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def environment(python: str) -> dict:
    """Versions and devices as the checked interpreter sees them."""
    probe = ("import json, torch; c = torch.cuda.is_available(); print(json.dumps({"
             "'torch': torch.__version__, 'cuda': torch.version.cuda, 'cuda_available': c, "
             "'nccl': '.'.join(map(str, torch.cuda.nccl.version())) if c else None, "
             "'gpus': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]"
             "}))")
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=REPO)
    info = json.loads(proc.stdout) if proc.returncode == 0 else {
        "error": (proc.stderr.strip().splitlines() or ["torch import failed"])[-1]}
    info.update(python=platform.python_version(), host=platform.node(),
                cpus=os.cpu_count(), platform=platform.platform())
    return info


# ------------------------------------------------------------------------------------------------
# GPU-marked tests
# ------------------------------------------------------------------------------------------------
def _junit_checks(path: Path) -> list[dict]:
    checks = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{Path(case.get('file') or GPU_TESTS).stem}::{case.get('name')}"
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = "skipped" if tag == "skipped" else "failed"
                message = (node.get("message") or node.text or "").strip().splitlines()
                message = message[0][:300] if message else tag
                break
        checks.append({"name": name, "kind": "test", "status": status,
                       "seconds": round(float(case.get("time") or 0.0), 2), "message": message})
    return checks


def run_gpu_tests(python: str, out: Path, timeout: float) -> list[dict]:
    junit = out / "gpu_tests.xml"
    log = out / "gpu_tests.log"
    command = [python, "-m", "pytest", "-q", "-m", "gpu", GPU_TESTS, f"--junitxml={junit}",
               "-o", "junit_family=xunit1", "-p", "no:cacheprovider"]
    start = time.time()
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        log.write_text(proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as err:
        log.write_text(f"timed out after {timeout:.0f} s\n{err.stdout or ''}{err.stderr or ''}")
        return [{"name": "gpu_tests", "kind": "test", "status": "failed",
                 "seconds": round(time.time() - start, 1),
                 "message": f"timed out after {timeout:.0f} s (log: {log})"}]
    if not junit.exists():
        return [{"name": "gpu_tests", "kind": "test", "status": "failed",
                 "seconds": round(time.time() - start, 1),
                 "message": f"pytest exited {proc.returncode} without a report (log: {log})"}]
    checks = _junit_checks(junit)
    if not checks:
        checks = [{"name": "gpu_tests", "kind": "test", "status": "failed", "seconds": 0.0,
                   "message": f"no GPU-marked tests collected (log: {log})"}]
    return checks


# ------------------------------------------------------------------------------------------------
# Benchmarks
# ------------------------------------------------------------------------------------------------
def compile_arguments(python: str) -> list[str] | None:
    """How tools/benchmark.py asks for a compiled model, read from its --help; None when it has
    no such option (override with GPU_CHECK_COMPILE_ARGS, e.g. "--compile max-autotune")."""
    if os.environ.get("GPU_CHECK_COMPILE_ARGS"):
        return os.environ["GPU_CHECK_COMPILE_ARGS"].split()
    proc = subprocess.run([python, "tools/benchmark.py", "--help"], cwd=REPO,
                          capture_output=True, text=True)
    match = re.search(r"--compile(\s+(\S+))?", proc.stdout)
    if not match:
        return None
    takes_value = bool(match.group(2)) and not match.group(2).startswith("-")
    return ["--compile", "default"] if takes_value else ["--compile"]


def run_benchmark(python: str, model: str, batch: int, compiled: list[str] | None, repeats: int,
                  timeout: float, out: Path) -> tuple[dict, dict | None]:
    name = f"benchmark::{model}" + ("::compiled" if compiled else "")
    command = [python, "tools/benchmark.py", "--model", model, "--device", "cuda",
               "--compare-reference", "--json", "--dtypes", "float32", "float16", "bfloat16",
               "--modes", "infer", "train", "--batch-sizes", str(batch), "--repeats",
               str(repeats), "--warmup", "2", "--roofline", *(compiled or [])]
    check = {"name": name, "kind": "benchmark", "command": " ".join(command[1:])}
    start = time.time()
    log = out / f"{name.replace('::', '_')}.log"
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:  # the budget ran out: not a failure of the code
        check.update(status="skipped", seconds=round(time.time() - start, 1),
                     message=f"stopped: did not finish in the {timeout:.0f} s of budget left")
        return check, None
    log.write_text(proc.stdout + proc.stderr)
    check["seconds"] = round(time.time() - start, 1)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        check.update(status="failed", message=f"exit {proc.returncode}: {lines[-1][:300]}")
        return check, None
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        check.update(status="failed", message=f"no JSON in the output (log: {log})")
        return check, None
    result["compiled"] = bool(compiled)
    check.update(status="passed", message=f"{len(result.get('runs', []))} timings")
    return check, result


GPU_RUNTIME_PROBE = ("import json, importlib.util as u; ort = u.find_spec('onnxruntime'); "
                     "p = __import__('onnxruntime').get_available_providers() if ort else []; "
                     "print(json.dumps({'tensorrt': bool(u.find_spec('tensorrt')), "
                     "'onnxruntime-cuda': 'CUDAExecutionProvider' in p}))")


def run_runtime_rows(python: str, timeout: float, out: Path) -> tuple[dict, dict | None]:
    """Video-FocalNet-T (8x224, batch 1, float32) under TensorRT and CUDA ONNX Runtime beside
    eager, on the GPU; skipped where neither package is installed."""
    check = {"name": "benchmark::runtimes", "kind": "benchmark", "seconds": 0.0}
    probe = subprocess.run([python, "-c", GPU_RUNTIME_PROBE], cwd=REPO, capture_output=True,
                           text=True)
    found = json.loads(probe.stdout) if probe.returncode == 0 else {}
    runtimes = [name for name, present in found.items() if present]
    if not runtimes:
        check.update(status="skipped", message="neither tensorrt nor onnxruntime-gpu is "
                     "installed (pip install tensorrt onnxruntime-gpu)")
        return check, None
    command = [python, "tools/benchmark.py", "--runtimes", *runtimes, "--device", "cuda",
               "--model", "video_focalnet_tiny", "--batch-sizes", "1", "--repeats", "10",
               "--no-reference", "--json"]
    check["command"] = " ".join(command[1:])
    start = time.time()
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        check.update(status="skipped", seconds=round(time.time() - start, 1),
                     message=f"stopped: did not finish in the {timeout:.0f} s of budget left")
        return check, None
    (out / "benchmark_runtimes.log").write_text(proc.stdout + proc.stderr)
    check["seconds"] = round(time.time() - start, 1)
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        lines = (proc.stderr.strip() or "no output").splitlines()
        check.update(status="failed", message=f"exit {proc.returncode}: {lines[-1][:300]}")
        return check, None
    check.update(status="passed", message=f"{', '.join(runtimes)} beside eager")
    return check, result


def _runtime_lines(result: dict) -> list[str]:
    lines = ["", f"{'runtime rows (' + result['settings']['model'] + ')':<34} {'ms':>9} "
                 f"{'median':>9} {'x eager':>8} {'|diff|':>9}"]
    for row in result["rows"]:
        lines.append(f"{row['impl']:<34} {row['ms']:>9.1f} {row['median_ms']:>9.1f} "
                     f"{row.get('speedup_vs_eager', 1.0):>8.2f} "
                     f"{row['max_abs_diff_vs_eager']:>9.1e}")
    return lines


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def summary_text(report: dict) -> str:
    env = report["environment"]
    gpus = ", ".join(env.get("gpus") or []) or "none"
    lines = [f"GPU check {report['started']} on {env.get('host')}: GPUs {gpus}; torch "
             f"{env.get('torch')}, CUDA {env.get('cuda')}, NCCL {env.get('nccl')}",
             f"{report['counts']['passed']} passed, {report['counts']['failed']} failed, "
             f"{report['counts']['skipped']} skipped in {report['duration_s']:.0f} s", "",
             f"{'check':<72} {'status':<8} {'s':>7}  message"]
    for check in report["checks"]:
        lines.append(f"{check['name']:<72} {check['status']:<8} {check.get('seconds', 0):7.1f}  "
                     f"{check.get('message', '')}")
    if report["benchmarks"]:
        lines += ["", f"{'model':<22} {'compiled':<8} {'impl':<10} {'mode':<6} {'batch':>5} "
                      f"{'dtype':<9} {'clips/s':>9} {'ms':>9} {'peak MB':>9} {'x ref fp32':>10}"]
        for result in report["benchmarks"]:
            if "rows" in result:  # the runtime rows
                lines += _runtime_lines(result)
                continue
            for run in result.get("runs", []):
                ratio = run.get("speedup_vs_reference_fp32")
                lines.append(f"{result['model']:<22} {str(result['compiled']):<8} "
                             f"{run['impl']:<10} {run['mode']:<6} {run['batch_size']:>5} "
                             f"{run['dtype']:<9} {run['clips_per_s']:>9.2f} {run['ms']:>9.1f} "
                             f"{run['peak_mem_mb']:>9.0f} "
                             f"{'' if ratio is None else f'{ratio:.2f}':>10}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small benchmark (Video-FocalNet-T, batch 2), no compiled runs")
    parser.add_argument("--out", default="gpu_check", help="folder for the report and logs")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="seconds for the whole check; benchmarks stop when it runs out")
    parser.add_argument("--python", default=sys.executable, help="interpreter to check")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    env = environment(args.python)
    cuda = bool(env.get("cuda_available"))
    report = {"schema": REPORT_SCHEMA, "started": _now(), "quick": args.quick,
              "budget_s": args.budget_s, "environment": env, "checks": [], "benchmarks": []}
    report["checks"] += run_gpu_tests(args.python, out, timeout=max(args.budget_s, 60.0))

    plan = QUICK_BENCHMARKS if args.quick else FULL_BENCHMARKS
    compiled = None if args.quick or not cuda else compile_arguments(args.python)
    variants = [(model, batch, None) for model, batch in plan]
    if not args.quick:
        variants += [(model, batch, compiled or ["--compile"]) for model, batch in plan]
    for model, batch, compile_args in variants:
        name = f"benchmark::{model}" + ("::compiled" if compile_args else "")
        left = args.budget_s - (time.time() - start)
        skip = ("no CUDA device" if not cuda else
                "tools/benchmark.py has no --compile option in this checkout"
                if compile_args and compiled is None else
                f"time budget ({args.budget_s:.0f} s) used up" if left < MIN_BENCHMARK_SECONDS
                else "")
        if skip:
            report["checks"].append({"name": name, "kind": "benchmark", "status": "skipped",
                                     "seconds": 0.0, "message": skip})
            continue
        check, result = run_benchmark(args.python, model, batch, compile_args,
                                      repeats=2 if args.quick else 5, timeout=left, out=out)
        report["checks"].append(check)
        if result is not None:
            report["benchmarks"].append(result)

    left = args.budget_s - (time.time() - start)
    if not cuda or left < MIN_BENCHMARK_SECONDS:
        report["checks"].append({"name": "benchmark::runtimes", "kind": "benchmark",
                                 "status": "skipped", "seconds": 0.0,
                                 "message": "no CUDA device" if not cuda else
                                 f"time budget ({args.budget_s:.0f} s) used up"})
    else:
        check, result = run_runtime_rows(args.python, left, out)
        report["checks"].append(check)
        if result is not None:
            report["benchmarks"].append(result)

    report["duration_s"] = round(time.time() - start, 1)
    report["counts"] = {status: sum(c["status"] == status for c in report["checks"])
                        for status in ("passed", "failed", "skipped")}
    text = summary_text(report)
    (out / "gpu_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_summary.txt").write_text(text)
    print(text, end="")
    print(f"report: {out / 'gpu_report.json'}  summary: {out / 'gpu_summary.txt'}")
    return 1 if report["counts"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
