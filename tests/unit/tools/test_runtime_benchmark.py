"""tools/benchmark.py --runtimes: the runtimes' rows beside eager and the reference port, one
interleaved run, outputs compared with eager. The harness runs on a two-stage Video-FocalNet of
width 8 in place of Video-FocalNet-T (building and exporting T takes minutes on a shared CPU)."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[deploy]')")
pytest.importorskip("openvino", reason="openvino is not installed (pip install '.[deploy]')")

from tools.benchmark import main as benchmark  # noqa: E402 (after the importorskips)


def _tiny_models(name, num_frames, img_size, num_classes, reference, design=None):
    from tests.reference_vfn import VideoFocalNet as Reference
    from video_focalnet.model import VideoFocalNet
    sizes = dict(img_size=img_size, num_classes=num_classes, num_frames=num_frames, embed_dim=8,
                 depths=[1, 1], focal_levels=[2, 2], focal_windows=[3, 3])
    torch.manual_seed(0)
    models = {"ours": VideoFocalNet(**sizes)}
    if reference:
        models["reference"] = Reference(**sizes)
        models["reference"].load_state_dict(models["ours"].state_dict(), strict=True)
    return models, (num_frames, 3, img_size, img_size)


def test_runtime_rows_beside_eager_and_reference(capsys, monkeypatch):
    monkeypatch.setattr("tools.workflows.benchmark.models.build_benchmark_models", _tiny_models)
    assert benchmark(["--runtimes", "onnxruntime", "openvino", "--model", "video_focalnet_tiny",
                      "--num-frames", "4", "--img-size", "32", "--num-classes", "10",
                      "--repeats", "2", "--warmup", "1", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["impl"]: row for row in result["rows"]}
    assert list(rows) == ["reference", "eager", "onnxruntime", "openvino"]
    assert result["settings"]["frames"] == 4 and result["settings"]["batch"] == 1
    for name in ("onnxruntime", "openvino", "reference"):
        assert rows[name]["max_abs_diff_vs_eager"] < 1e-4
        assert rows[name]["ms"] > 0 and rows[name]["median_ms"] >= rows[name]["ms"]
    assert rows["onnxruntime"]["speedup_vs_reference"] == pytest.approx(
        rows["reference"]["ms"] / rows["onnxruntime"]["ms"], rel=0.02)
    assert "speedup_vs_eager" in rows["openvino"] and "speedup_vs_eager" not in rows["eager"]


def test_unknown_runtime_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        benchmark(["--runtimes", "tvm", "--model", "video_focalnet_tiny"])
    assert exit_info.value.code == 2


def test_runtime_flags_are_the_model_harness_names():
    from tools.workflows.benchmark.runtimes import parse_args
    args = parse_args(["--num-frames", "4", "--num-classes", "10", "--batch-sizes", "3"])
    assert (args.frames, args.classes, args.batch) == (4, 10, 3)
    for old in ("--frames", "--classes"):  # one flag per meaning, no aliases
        with pytest.raises(SystemExit):
            parse_args([old, "2"])
