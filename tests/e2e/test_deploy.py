"""Deployment end to end on the tiny trained checkpoints: tools/export.py, then tools/predict.py,
tools/extract_features.py and tools/test.py under ONNX Runtime and OpenVINO write the files the
PyTorch runs write, with probabilities, features and scores within 1e-4; free-text labels for
Vita-CLIP through the PyTorch text tower; the one-line errors (missing runtime, missing JSON,
clips the graph was not exported for, a runtime model without its text tower)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the deploy extra is not installed (pip install '.[deploy]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[deploy]')")
pytest.importorskip("openvino", reason="openvino is not installed (pip install '.[deploy]')")

from tests.helpers.faults import one_error_line, run_main  # noqa: E402
from tests.helpers.trained import focal, vita  # noqa: F401,E402  (fixtures)
from tools.export import main as export_tool  # noqa: E402
from tools.extract_features import main as features_tool  # noqa: E402
from tools.predict import main as predict_tool  # noqa: E402
from tools.test import main as evaluate_tool  # noqa: E402

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(focal, vita, tmp_path_factory):  # noqa: F811
    """{"focal": .onnx, "vita": .xml} exported once by tools/export.py."""
    out = tmp_path_factory.mktemp("exported")
    assert export_tool(["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint),
                        "--format", "onnx", "--out", str(out / "focal")]) == 0
    assert export_tool(["--cfg", str(vita.cfg), "--checkpoint", str(vita.checkpoint),
                        "--format", "openvino", "--out", str(out / "vita")]) == 0
    files = {"focal": out / "focal" / "latest.onnx", "vita": out / "vita" / "latest.xml"}
    for path in files.values():
        assert path.is_file() and Path(f"{path}.json").is_file()
    assert (out / "vita" / "latest.bin").is_file() and (out / "vita" / "latest.onnx").is_file()
    return files


def _probabilities(json_file: Path) -> dict:
    out = {}
    for record in json.loads(json_file.read_text()):
        probs = np.zeros(10)
        for entry in record["topk"]:
            probs[entry["index"]] = entry["prob"]
        out[record["video"]] = (probs, [e["label"] for e in record["topk"]])
    return out


@pytest.mark.parametrize("name", ["focal", "vita"])
def test_predict_without_config_matches_torch(name, request, exported, tmp_path, capsys):
    run = request.getfixturevalue(name)
    videos = [str(v) for v in run.val_videos[:3]]
    assert predict_tool(["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint), *videos,
                         "--topk", "10", "--json", str(tmp_path / "torch.json")]) == 0
    # the exported file alone: its JSON has the settings and class names
    assert predict_tool(["--checkpoint", str(exported[name]), *videos, "--topk", "10",
                         "--json", str(tmp_path / "runtime.json")]) == 0
    capsys.readouterr()
    want, got = _probabilities(tmp_path / "torch.json"), _probabilities(tmp_path / "runtime.json")
    assert list(want) == list(got) == videos
    for video in videos:
        assert np.abs(want[video][0] - got[video][0]).max() < TOLERANCE
        assert sorted(want[video][1]) == sorted(got[video][1])
        assert want[video][0].sum() == pytest.approx(1.0, abs=1e-5)


def test_extract_features_under_runtimes_matches_torch(focal, exported, tmp_path,  # noqa: F811
                                                       capsys):
    videos = str(focal.data / "val.csv")
    common = ["--input", videos, "--window", "0.4"]
    assert features_tool(["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint),
                          "--out", str(tmp_path / "torch"), *common]) == 0
    assert features_tool(["--checkpoint", str(exported["focal"]), "--runtime", "openvino",
                          "--out", str(tmp_path / "openvino"), *common]) == 0
    capsys.readouterr()
    want = np.load(tmp_path / "torch" / "features.npy")
    got = np.load(tmp_path / "openvino" / "features.npy")
    assert want.shape == got.shape and want.shape[0] == 6 and want.shape[2] == 16
    np.testing.assert_array_equal(np.isnan(want), np.isnan(got))
    assert np.nanmax(np.abs(want - got)) < TOLERANCE
    assert (tmp_path / "torch" / "index.csv").read_text() == \
        (tmp_path / "openvino" / "index.csv").read_text()


def test_tools_test_under_runtimes_matches_torch(vita, exported, tmp_path, capsys):  # noqa: F811
    base = ["--cfg", str(vita.cfg)]
    assert evaluate_tool([*base, "--checkpoint", str(vita.checkpoint),
                      "--output", str(tmp_path / "torch")]) == 0
    assert evaluate_tool([*base, "--checkpoint", str(exported["vita"]),
                      "--output", str(tmp_path / "openvino")]) == 0
    # a checkpoint with --runtime: exported on the fly
    assert evaluate_tool([*base, "--checkpoint", str(vita.checkpoint), "--runtime", "onnxruntime",
                      "--output", str(tmp_path / "onnxruntime")]) == 0
    capsys.readouterr()
    want = np.load(tmp_path / "torch" / "scores.npy")
    assert want.shape == (6, 10)
    with open(tmp_path / "torch" / "predictions.csv", newline="") as f:
        want_rows = list(csv.DictReader(f))
    want_summary = json.loads((tmp_path / "torch" / "eval_results.json").read_text())
    for runtime in ("openvino", "onnxruntime"):
        folder = tmp_path / runtime
        assert np.abs(np.load(folder / "scores.npy") - want).max() < TOLERANCE
        with open(folder / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [(r["path"], r["label"], r["pred1"]) for r in rows] == \
            [(r["path"], r["label"], r["pred1"]) for r in want_rows]
        summary = json.loads((folder / "eval_results.json").read_text())
        for key in ("top1", "top5", "num_videos", "per_class_acc"):
            assert summary[key] == want_summary[key]


def test_vita_free_text_labels_under_a_runtime(vita, tmp_path, capsys):  # noqa: F811
    labels = "a dog catching a frisbee,moving left,an object growing"
    common = [str(vita.val_videos[0]), "--labels", labels, "--text-cache-dir",
              str(tmp_path / "cache"), "--cfg", str(vita.cfg), "--checkpoint",
              str(vita.checkpoint)]
    assert predict_tool([*common, "--json", str(tmp_path / "torch.json")]) == 0
    assert predict_tool([*common, "--runtime", "onnxruntime",
                         "--json", str(tmp_path / "ort.json")]) == 0
    capsys.readouterr()
    [want], [got] = (json.loads((tmp_path / f).read_text()) for f in ("torch.json", "ort.json"))
    assert [t["label"] for t in got["topk"]] == [t["label"] for t in want["topk"]]
    assert max(abs(a["prob"] - b["prob"]) for a, b in zip(want["topk"], got["topk"])) < TOLERANCE


def test_deploy_errors_are_one_line(focal, vita, exported, tmp_path,  # noqa: F811
                                    capsys, monkeypatch):
    video = str(focal.val_videos[0])

    def error_of(tool, argv) -> str:
        code, _, err = run_main(tool, argv, capsys)
        assert code == 2
        return one_error_line(err)

    # an exported file without its JSON
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(exported["focal"].read_bytes())
    assert "bare.onnx.json is missing" in error_of(predict_tool, ["--checkpoint", bare, video])
    # clips the graph was not exported for
    err = error_of(predict_tool, ["--cfg", focal.cfg, "--checkpoint", exported["focal"], video,
                                  "--opts", "DATA.NUM_FRAMES", "8"])
    assert "DATA.NUM_FRAMES 8" in err and "4 frames" in err
    # a checkpoint needs its config; other labels need the PyTorch text tower
    assert "--cfg FILE is needed" in error_of(predict_tool,
                                              ["--checkpoint", focal.checkpoint, video])
    assert "needs the PyTorch checkpoint" in error_of(
        predict_tool, ["--checkpoint", exported["vita"], video, "--labels", "a,b"])
    # a runtime that is not installed: the extra is named
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    err = error_of(predict_tool, ["--checkpoint", exported["focal"], video])
    assert "onnxruntime" in err and "pip install '.[deploy]'" in err
    monkeypatch.setitem(sys.modules, "openvino", None)
    err = error_of(export_tool, ["--cfg", focal.cfg, "--checkpoint", focal.checkpoint,
                                 "--format", "openvino", "--out", tmp_path / "x"])
    assert "openvino" in err and "[deploy]" in err
    assert not (tmp_path / "x").exists()
