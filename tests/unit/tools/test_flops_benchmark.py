"""engine/flops.py (fvcore counts), tools/flops.py and tools/benchmark.py (the model harnesses in
tools/workflows/benchmark/; the loader harness is tested in test_loader_benchmark.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tools"))

import flops  # noqa: E402  (tools/flops.py)
from engine.flops import count_gflops  # noqa: E402
from tools.workflows import benchmark  # noqa: E402
from tools.workflows.benchmark.models import build_benchmark_models  # noqa: E402

from video_focalnet import VideoFocalNet  # noqa: E402

SMALL = dict(img_size=32, embed_dim=8, depths=(1, 1, 2, 1), num_classes=5, num_frames=4)


def _analytic_macs(design: str, frames=4, size=32, dim=8, depths=(1, 1, 2, 1), classes=5,
                   level=2, window=3) -> int:
    """Conv + linear multiply-adds of a default-option Video-FocalNet, written out by hand."""
    kernels = [2 * lvl + window for lvl in range(level)]
    res = size // 4
    total = frames * res * res * dim * 3 * 16  # stem
    for stage, depth in enumerate(depths):
        c = dim * 2 ** stage
        tokens = frames * res * res
        per_token = (c * (2 * c + level + 1) + sum(k * k for k in kernels) * c  # f, depthwise
                     + c * c + c * c + 2 * 4 * c * c)  # h, proj, mlp
        temporal = {"parallel": c * (c + level + 1) + sum(kernels) * c * c + c * c,
                    "spatial": 0,
                    "spatial_temporal": c * (2 * c + level + 1) + sum(kernels) * c * c + c * c,
                    "joint": sum(k ** 3 - k * k for k in kernels) * c}[design]
        total += depth * tokens * (per_token + temporal)
        if stage < len(depths) - 1:
            total += frames * (res // 2) ** 2 * 2 * c * c * 4  # downsample
            res //= 2
    return total + dim * 2 ** (len(depths) - 1) * classes


@pytest.mark.parametrize("design", ["parallel", "spatial", "spatial_temporal", "joint"])
def test_fvcore_counts_every_conv_and_linear(design):
    model = VideoFocalNet(**SMALL, st_design=design)
    gflops, skipped = count_gflops(model, torch.randn(1, 4, 3, 32, 32))
    assert gflops * 1e9 == pytest.approx(_analytic_macs(design), rel=1e-9)
    assert not {"aten::_convolution", "aten::linear", "aten::conv2d"} & set(skipped)
    with_elementwise, _ = count_gflops(model, torch.randn(1, 4, 3, 32, 32), True)
    assert with_elementwise > gflops


def test_released_tiny_gflops_match_spec():
    model = VideoFocalNet(num_classes=400, num_frames=8)
    gflops, _ = count_gflops(model, torch.randn(1, 8, 3, 224, 224))
    assert gflops == pytest.approx(63.0, rel=0.02)


def test_flops_cli_json_for_a_config(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("MODEL:\n  TYPE: videofocalnet_tiny\n  NUM_CLASSES: 5\n  FOCAL:\n"
                   "    EMBED_DIM: 8\n    DEPTHS: [1, 1, 2, 1]\n    ST_DESIGN: spatial_temporal\n"
                   "DATA:\n  NUM_FRAMES: 4\n  IMG_SIZE: 32\nTEST:\n  NUM_CLIP: 2\n  NUM_CROP: 3\n")
    assert flops.main(["--cfg", str(cfg), "--json", "--opts", "MODEL.NUM_CLASSES", "5"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert {"model", "design", "num_frames", "img_size", "params_m", "gflops_per_view",
            "views"} <= set(row)
    assert row["design"] == "spatial_temporal" and row["views"] == 6
    assert row["gflops_per_view"] == pytest.approx(_analytic_macs("spatial_temporal") / 1e9,
                                                   abs=0.006)


def test_flops_cli_table_over_registry(capsys):
    code = flops.main(["--models", "video_focalnet_tiny", "--designs", "spatial,joint",
                       "--num-frames", "2", "--img-size", "32", "--views", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "video_focalnet_tiny" in out and "joint" in out and "spatial" in out
    assert flops.main(["--models", "video_focalnet_tiny", "--designs", "diagonal"]) == 2


def test_benchmark_compares_with_reference(capsys):
    code = benchmark.main(["--model", "video_focalnet_tiny", "--num-frames", "2",
                           "--img-size", "32", "--batch-sizes", "1", "--repeats", "1",
                           "--warmup", "0", "--compare-reference", "--json", "--threads", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    runs = result["runs"]
    assert {(r["impl"], r["mode"], r["dtype"]) for r in runs} == {
        (impl, mode, dtype) for impl in ("ours", "reference") for mode in ("infer", "train")
        for dtype in ("float32", "bfloat16")}
    assert all(r["clips_per_s"] > 0 and r["peak_mem_mb"] > 0 for r in runs)
    assert all("speedup_vs_reference_fp32" in r for r in runs if r["impl"] == "ours")
    agreement = result["agreement"]
    assert agreement["float32"]["max_abs_diff_vs_reference_fp32"] < 1e-4
    assert agreement["float32"]["top1_agreement_vs_reference_fp32"] == 1.0


def test_benchmark_rejects_unknown_model(capsys):
    assert benchmark.main(["--model", "resnet50", "--batch-sizes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model: unknown model 'resnet50'")
    assert "video_focalnet_tiny" in err and "vita_clip_b16" in err  # the registry's names
    assert flops.main(["--models", "resnet50"]) == 2
    assert "video_focalnet_tiny" in capsys.readouterr().err


def test_benchmark_each_measurement_in_its_own_process(capsys):
    code = benchmark.main(["--model", "video_focalnet_tiny", "--runs",
                           "reference:infer:float32,ours:train:bfloat16", "--num-frames", "2",
                           "--img-size", "32", "--num-classes", "5", "--batch-sizes", "1",
                           "--repeats", "1", "--threads", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    runs = result["runs"]
    assert [(r["impl"], r["mode"], r["dtype"]) for r in runs] == [
        ("reference", "infer", "float32"), ("ours", "train", "bfloat16")]
    for r in runs:
        assert {"sec", "cpu_sec", "peak_mb", "model_mb"} <= set(r)
        assert r["sec"] > 0 and r["cpu_sec"] > 0 and r["model_mb"] > 0 and r["batch_size"] == 1
    assert runs[0]["params"] == runs[1]["params"]  # the reference holds the same weights
    assert benchmark.main(["--model", "video_focalnet_tiny", "--runs", "ours:fly:float32"]) == 2
    assert benchmark.main(["--runs", "reference:train:bfloat16"]) == 2  # reference: float32


def test_loader_flag_runs_the_loader_harness_with_the_shared_flags(monkeypatch, capsys):
    """tools/benchmark.py --loader runs the loader harness with the same flags as the models
    (--repeats, --baseline, --profile, --output); the harness itself is tested in
    test_loader_benchmark.py."""
    import tools.workflows.benchmark.loader as loader_benchmark

    seen = {}

    def fake(args):
        seen.update(repeats=args.repeats, baseline=args.baseline, profile=args.profile,
                    output=args.output)
        return {"cells": {"340p/dense": {"cpu": {"augment_over_pyav_decode": 0.2}}}}

    monkeypatch.setattr(loader_benchmark, "run_loader_benchmark", fake)
    assert benchmark.main(["--loader", "--repeats", "3", "--baseline", "main", "--json"]) == 0
    assert seen == {"repeats": 3, "baseline": "main", "profile": 0, "output": ""}
    out = json.loads(capsys.readouterr().out)
    assert out["cells"]["340p/dense"]["cpu"]["augment_over_pyav_decode"] == 0.2
    assert benchmark.main(["--loader", "--profile", "12"]) == 0
    assert seen["profile"] == 12 and seen["repeats"] == 30


def test_benchmark_times_compiled_variants_with_compile_time_and_profile(capsys, monkeypatch):
    import engine.compile
    monkeypatch.setattr(engine.compile, "BACKEND", "aot_eager")  # no C++ code generation
    code = benchmark.main(["--model", "video_focalnet_tiny", "--num-frames", "2",
                           "--img-size", "32", "--batch-sizes", "1", "--repeats", "2",
                           "--warmup", "0", "--compare-reference", "--json", "--threads", "1",
                           "--dtypes", "float32", "--modes", "infer", "--compile", "default",
                           "--profile", "3"])
    assert code == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["impl"] for r in runs] == ["ours", "compiled-default", "reference"]
    compiled = runs[1]
    assert compiled["compile_s"] > 0 and compiled["speedup_vs_ours_eager"] > 0
    assert "median_speedup_vs_reference_fp32" in compiled
    assert all(r["median_ms"] >= r["ms"] > 0 and len(r["profile"]) == 3 for r in runs)
    assert all(op["self_ms"] >= 0 and op["calls"] >= 1 for op in compiled["profile"])


def test_benchmark_reports_matrix_work_and_the_machines_roofline(capsys):
    """gflop is the step's matrix-op work: for inference twice the multiply-adds that
    engine.flops counts for the same model and clip, and about three times that for a training
    step (forward, gradient of the input, gradient of the weights); gflops_per_s divides it by
    the best time, and --roofline gives the fraction of the measured GEMM rate."""
    args = ["--model", "video_focalnet_tiny", "--num-frames", "2", "--img-size", "32",
            "--num-classes", "5", "--batch-sizes", "1", "--repeats", "1", "--warmup", "0",
            "--threads", "1", "--dtypes", "float32", "--compare-reference", "--roofline", "--json"]
    assert benchmark.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    rates = result["roofline"]["float32"]
    assert rates["gemm_gflops_per_s"] > 0 and rates["conv_gflops_per_s"] > 0
    models, shape = build_benchmark_models("video_focalnet_tiny", 2, 32, 5, False)
    macs, _ = count_gflops(models["ours"].eval(), torch.zeros(1, *shape))
    rows = {(r["impl"], r["mode"]): r for r in result["runs"]}
    infer, train = rows[("ours", "infer")], rows[("ours", "train")]
    assert infer["gflop"] == pytest.approx(2 * macs, rel=0.01)
    assert rows[("reference", "infer")]["gflop"] == pytest.approx(infer["gflop"], rel=0.01)
    assert 2.5 * infer["gflop"] < train["gflop"] < 3.1 * infer["gflop"]
    for row in result["runs"]:
        assert row["gflops_per_s"] == pytest.approx(row["gflop"] / row["ms"] * 1e3, rel=0.02)
        assert row["fraction_of_gemm_peak"] == pytest.approx(
            row["gflops_per_s"] / rates["gemm_gflops_per_s"], abs=1e-3)
