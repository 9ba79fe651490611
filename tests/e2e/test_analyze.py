"""tools/analyze.py end to end on the tools/test.py runs of two tiny trained checkpoints:
confusion outputs, fusion, per-class comparison, a large class set, and bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers.trained import trained
from tools.analyze import main as analyze
from tools.test import main as evaluate_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    out = tmp_path_factory.mktemp("runs")
    for name in ("focal", "vita"):
        run = trained(base, name)
        assert evaluate_tool(["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint),
                              "--output", str(out / name)]) == 0
    return out / "focal", out / "vita"


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_confusion(runs, capsys):
    focal, _ = runs
    # tools/test.py's last line names every file it wrote, scores.npy too
    assert (f"wrote {focal / 'eval_results.json'}, predictions.csv and scores.npy beside it"
            in (focal / "log.txt").read_text())
    assert analyze(["confusion", "--scores", str(focal)]) == 0
    printed = capsys.readouterr().out
    out = focal / "analysis"
    for name in ("confusion.png", "per_class_accuracy.png"):
        assert (out / name).stat().st_size > 5000, name
    scores = np.load(focal / "scores.npy")
    rows = _csv(focal / "predictions.csv")
    labels = np.array([int(r["label"]) for r in rows])
    wrong = int((scores.argmax(1) != labels).sum())
    pairs = _csv(out / "confused_pairs.csv")
    assert sum(int(p["count"]) for p in pairs) == wrong
    assert [int(p["count"]) for p in pairs] == sorted((int(p["count"]) for p in pairs),
                                                      reverse=True)
    names = list(json.loads((focal / "eval_results.json").read_text())["per_class_acc"])
    assert all(p["true"] in names and p["predicted"] in names and p["true"] != p["predicted"]
               for p in pairs)
    top1 = json.loads((focal / "eval_results.json").read_text())["top1"]
    assert f"top-1 {top1:.2f}" in printed and "confused_pairs.csv" in printed


def test_fuse_and_compare(runs, tmp_path, capsys):
    focal, vita = runs
    a, b = np.load(focal / "scores.npy"), np.load(vita / "scores.npy")
    labels = np.array([int(r["label"]) for r in _csv(focal / "predictions.csv")])
    assert analyze(["fuse", str(focal), str(vita), "--weights", "3", "1",
                    "--out", str(tmp_path / "fused")]) == 0
    printed = capsys.readouterr().out
    fused = np.load(tmp_path / "fused" / "scores.npy")
    np.testing.assert_allclose(fused, 0.75 * a + 0.25 * b, rtol=1e-6)
    top1 = 100.0 * float((fused.argmax(1) == labels).mean())
    assert "fused" in printed and f"{top1:6.2f}" in printed.splitlines()[-2]
    # the fused run is a run like any other
    assert analyze(["confusion", "--scores", str(tmp_path / "fused")]) == 0
    assert json.loads((tmp_path / "fused" / "eval_results.json").read_text())["top1"] == \
        pytest.approx(top1)
    capsys.readouterr()

    assert analyze(["compare", str(focal), str(vita), "--out", str(tmp_path)]) == 0
    rows = _csv(tmp_path / "compare.csv")
    diffs = [float(r["diff"]) for r in rows]
    assert diffs == sorted(diffs, reverse=True)
    for r in rows:
        assert float(r["diff"]) == pytest.approx(float(r["acc_b"]) - float(r["acc_a"]), abs=1e-3)
    assert sum(int(r["videos"]) for r in rows) == len(labels)


def _fake_run(path, classes=50, videos=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, videos)
    scores = rng.dirichlet(np.ones(classes), videos).astype(np.float32)
    scores[np.arange(videos), labels] += 0.05  # better than chance
    scores /= scores.sum(1, keepdims=True)
    path.mkdir()
    np.save(path / "scores.npy", scores)
    lines = ["index,path,label,correct"] + [f"{i},v{i}.mp4,{label},0"
                                            for i, label in enumerate(labels)]
    (path / "predictions.csv").write_text("\n".join(lines) + "\n")
    return path


def test_large_class_sets_show_pairs(tmp_path, capsys):
    run = _fake_run(tmp_path / "big")
    assert analyze(["confusion", "--scores", str(run), "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "confused_pairs.png").is_file()
    assert not (tmp_path / "a" / "confusion.png").exists()
    pairs = _csv(tmp_path / "a" / "confused_pairs.csv")  # no class names: "class i"
    assert pairs and all(p["true"].startswith("class ") for p in pairs)


def test_bad_input(runs, tmp_path, capsys):
    focal, vita = runs
    other = _fake_run(tmp_path / "other", classes=10, videos=6)

    def error(argv):
        assert analyze(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        return lines[0]

    assert "does not exist" in error(["confusion", "--scores", str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    assert "scores.npy not found" in error(["confusion", "--scores", str(tmp_path / "empty")])
    assert "different class lists" in error(["fuse", str(focal), str(other)])
    assert "2 values for 3 runs" in error(["fuse", str(focal), str(vita), str(focal),
                                           "--weights", "1", "2"])
