"""scripts/gpu_check.sh keeps working on a machine without a GPU: every check is listed in
gpu_report.json as skipped and the exit status is 0."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GPU_TESTS = [f"test_gpu::test_training_step[{model}-{precision}]"
             for model in ("video_focalnet", "vita_clip") for precision in ("off", "fp16", "bf16")]
GPU_TESTS += ["test_gpu::test_checkpoint_saved_on_gpu_loads_back_identical",
              "test_gpu::test_resumed_gpu_run_matches_uninterrupted",
              "test_gpu::test_gpu_evaluation_equals_cpu[video_focalnet]",
              "test_gpu::test_gpu_evaluation_equals_cpu[vita_clip]",
              "test_gpu::test_loader_pin_memory_and_workers",
              "test_gpu::test_torchrun_nccl_scores_every_video_once",
              "test_gpu::test_tensorrt_engine_matches_eager"]
MODELS = ["video_focalnet_tiny", "vita_clip_b16", "video_focalnet_small", "video_focalnet_base"]
BENCHMARKS = [f"benchmark::{m}" for m in MODELS] + [f"benchmark::{m}::compiled" for m in MODELS]


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("quick", [False, True])
def test_gpu_check_on_cpu_reports_every_check_skipped(tmp_path, quick):
    out = tmp_path / "report"
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")  # CPU even on a GPU host
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--out", str(out),
                           *(["--quick"] if quick else [])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu_report.json").read_text())
    assert report["schema"] == 1 and report["quick"] is quick
    assert report["environment"]["cuda_available"] is False and report["environment"]["torch"]
    names = [check["name"] for check in report["checks"]]
    assert names == GPU_TESTS + (["benchmark::video_focalnet_tiny"] if quick else BENCHMARKS) \
        + ["benchmark::runtimes"]
    for check in report["checks"]:
        assert check["status"] == "skipped", check
        assert check["kind"] in ("test", "benchmark") and check["message"]
    assert report["counts"] == {"passed": 0, "failed": 0, "skipped": len(names)}
    assert report["benchmarks"] == [] and report["duration_s"] < 300
    summary = (out / "gpu_summary.txt").read_text()
    assert all(name in summary for name in names) and "0 failed" in summary
    assert summary in proc.stdout


def test_junit_results_become_checks(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_gpu" name="test_a" file="tests/e2e/test_gpu.py" time="1.5"/>'
        '<testcase classname="tests.test_gpu" name="test_b[x]" time="0.2">'
        '<failure message="assert 1 == 2">long traceback</failure></testcase>'
        '<testcase classname="tests.test_gpu" name="test_c" time="0">'
        '<skipped message="needs a CUDA device"/></testcase>'
        '<testcase classname="tests.test_gpu" name="test_d" time="0">'
        '<error message="fixture failed"/></testcase>'
        '</testsuite></testsuites>')
    checks = _gpu_check_module()._junit_checks(junit)
    assert [(c["name"], c["status"], c["message"]) for c in checks] == [
        ("test_gpu::test_a", "passed", ""), ("test_gpu::test_b[x]", "failed", "assert 1 == 2"),
        ("test_gpu::test_c", "skipped", "needs a CUDA device"),
        ("test_gpu::test_d", "failed", "fixture failed")]
    assert checks[0]["seconds"] == 1.5


def test_compile_option_is_read_from_the_benchmark_help(monkeypatch):
    module = _gpu_check_module()
    monkeypatch.setenv("GPU_CHECK_COMPILE_ARGS", "--compile max-autotune")
    assert module.compile_arguments(sys.executable) == ["--compile", "max-autotune"]
