"""The demo pipeline at its --quick size: synthetic data -> two tiny Video-FocalNets (parallel and
spatial-only) -> test -> summary.csv -> predict and visualise with the parallel model, then a
re-run that reuses everything.

The claim the demo makes is checked on the validation set: the parallel design, which sees frame
order, learns the time-reversed pairs; the spatial-only design cannot tell the two classes of a
pair apart, so it stays near 50% (pair right, direction guessed). Measured at this size: parallel
about 90%, spatial about 50%. Why is also checked on the trained checkpoints: the spatial-only
model's per-frame features are exactly equivariant to playing a clip backwards, the parallel
model's are not.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from engine.build import build_model
from engine.checkpoint import load_model_weights
from engine.config import load_cfg
from tools.demo import DEMO_DIR, QUICK_OPTS, SUMMARY_COLUMNS, main


def _load(design: str, out: Path, data: Path):
    cfg = load_cfg(f"{DEMO_DIR}/{design}.yaml", list(QUICK_OPTS) + ["DATA.ROOT", str(data)])
    model = build_model(cfg)
    load_model_weights(model, str(out / design / "latest.pth"))
    return model.eval(), cfg


@pytest.mark.slow
def test_quick_demo(tmp_path, capsys):
    out, data = tmp_path / "demo", tmp_path / "synthetic"
    assert main(["--quick", "--output", str(out), "--data-root", str(data), "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert "[3/4] results" in printed and "TensorBoard" in printed
    # [4/4]: the parallel model predicts validation clips and its modulators are drawn
    lines = printed.strip().splitlines()
    assert lines[-3] == f"predictions:  {out / 'predict' / 'val_predictions.json'}"
    png = out / "visualize" / "000001_modulator.png"
    gif = out / "visualize" / "000001_modulator.gif"
    assert lines[-2] == f"modulators:   {png} (grid), {gif} (animation)"
    assert png.stat().st_size > 10000 and gif.stat().st_size > 1000
    predicted = json.loads((out / "predict" / "val_predictions.json").read_text())
    with open(out / "parallel" / "predictions.csv", newline="") as f:
        tested = {r["path"]: int(r["pred1"]) for r in csv.DictReader(f)}
    assert len(predicted) == 4
    assert [p["topk"][0]["index"] for p in predicted] == [tested[p["video"]] for p in predicted]

    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == SUMMARY_COLUMNS
    by_design = {r["design"]: r for r in rows}
    assert list(by_design) == ["parallel", "spatial"]
    for design, row in by_design.items():
        results = json.loads((out / design / "eval_results.json").read_text())
        assert float(row["top1"]) == pytest.approx(results["top1"], abs=1e-3)
        assert results["num_videos"] == 200
        assert 0 <= float(row["top1"]) <= float(row["top5"]) <= 100
        assert float(row["train_seconds"]) > 0 and float(row["gflops"]) > 0
        assert (out / design / "latest.pth").is_file() and any((out / design / "tb").iterdir())
    top1 = {design: float(row["top1"]) for design, row in by_design.items()}
    assert top1["parallel"] >= 70.0, top1  # learned the direction within most pairs
    assert top1["spatial"] <= 62.0, top1  # at most the pair plus chance within it (50%)
    assert top1["parallel"] >= top1["spatial"] + 20.0, top1
    assert float(by_design["parallel"]["params_m"]) > float(by_design["spatial"]["params_m"])
    assert float(by_design["parallel"]["gflops"]) > float(by_design["spatial"]["gflops"])

    # the trained models: only the parallel design can tell a clip from its time reversal
    parallel, cfg = _load("parallel", out, data)
    spatial, _ = _load("spatial", out, data)
    torch.manual_seed(0)
    clips = torch.randn(4, cfg.DATA.NUM_FRAMES, 3, cfg.DATA.IMG_SIZE, cfg.DATA.IMG_SIZE)
    with torch.no_grad():  # per-frame features of the reversed clip vs reversed features
        gap = {name: (m.forward_features(clips.flip(1)) - m.forward_features(clips).flip(1))
               .abs().max().item() for name, m in (("parallel", parallel), ("spatial", spatial))}
    assert gap["spatial"] < 1e-5, gap  # frames processed independently: blind to their order
    assert gap["parallel"] > 1e-4, gap  # the temporal branch sees the order

    # a second run reuses the data and the finished runs
    assert main(["--quick", "--output", str(out), "--data-root", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "reusing" in printed and printed.count("finished earlier") == 2
    with open(out / "summary.csv", newline="") as f:
        assert list(csv.DictReader(f)) == rows
