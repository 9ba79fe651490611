"""Ablation runner: ablation-file validation, and an end-to-end two-variant ablation on a tiny
synthetic set (train + test each, reports, resumability)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import tools.workflows.experiments as experiments
from engine.config import ConfigError, get_cfg, merge_opts
from tools.workflows.ablation import load_ablation
from tools.workflows.experiments import ROW_COLUMNS, opts_to_cli

REPO = Path(__file__).resolve().parents[2]
DEMO_BASE = REPO / "configs" / "demo" / "base.yaml"
# A very small model and data set: one epoch takes seconds on one core.
TINY = ["MODEL.FOCAL.EMBED_DIM", 16, "MODEL.FOCAL.DEPTHS", [1, 1, 1, 1],
        "DATA.SYNTHETIC.NUM_TRAIN", 40, "DATA.SYNTHETIC.NUM_VAL", 20, "DATA.SYNTHETIC.SIZE", 32,
        "DATA.IMG_SIZE", 32, "DATA.INPUT_SIZE", 32, "DATA.NUM_FRAMES", 4, "DATA.BATCH_SIZE", 8,
        "DATA.NUM_WORKERS", 0, "TRAIN.EPOCHS", 1, "TRAIN.WARMUP_EPOCHS", 0, "TEST.NUM_CLIP", 1,
        "TEST.NUM_CROP", 3, "TEST.BATCH_SIZE", 10, "PRINT_FREQ", 1000]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# Ablation files
# ---------------------------------------------------------------------------------------------
def test_parse_dotted_and_nested_opts(tmp_path):
    path = _write(tmp_path / "abl.yaml", """
description: two ways to write overrides
variants:
  - name: a
    opts: {MODEL.FOCAL.ST_DESIGN: spatial, TRAIN.BASE_LR: 1.0e-3}
  - name: b
    opts:
      MODEL: {FOCAL: {ST_DESIGN: joint, DEPTHS: [1, 1, 1, 1]}}
  - name: c
    opts: {}
""")
    variants = load_ablation(str(path), str(DEMO_BASE))
    assert [v.name for v in variants] == ["a", "b", "c"]
    assert variants[0].opts == {"MODEL.FOCAL.ST_DESIGN": "spatial", "TRAIN.BASE_LR": 1e-3}
    assert variants[1].opts == {"MODEL.FOCAL.ST_DESIGN": "joint", "MODEL.FOCAL.DEPTHS": [1, 1, 1, 1]}
    cfg = experiments.variant_cfg(variants[1], str(DEMO_BASE), ["TRAIN.EPOCHS", 3], str(tmp_path))
    assert cfg.MODEL.FOCAL.ST_DESIGN == "joint" and list(cfg.MODEL.FOCAL.DEPTHS) == [1, 1, 1, 1]
    assert cfg.TRAIN.EPOCHS == 3 and cfg.OUTPUT == str(tmp_path / "b")
    # the variant's own opts win over the command line's
    cfg = experiments.variant_cfg(variants[0], str(DEMO_BASE),
                                  ["MODEL.FOCAL.ST_DESIGN", "parallel"], str(tmp_path))
    assert cfg.MODEL.FOCAL.ST_DESIGN == "spatial"


@pytest.mark.parametrize("body, message", [
    ("variants: []\n", "non-empty list"),
    ("runs: []\n", "top-level `variants:`"),
    ("variants:\n  - name: a\n    opts: {MODEL.FOCAL.ST_DESING: spatial}\n",
     r"variant 0 \(a\).*unknown config key MODEL.FOCAL.ST_DESING.*Did you mean MODEL.FOCAL.ST_DESIGN"),
    ("variants:\n  - name: a\n  - name: b\n    opts: {MODEL.FOCAL.ST_DESIGN: diagonal}\n",
     r"variant 1 \(b\).*unknown value 'diagonal'"),
    ("variants:\n  - name: a\n  - name: a\n", "variant 1: duplicate variant name"),
    ("variants:\n  - name: a/b\n", "folder-safe"),
    ("variants:\n  - name: a\n    opts: 3\n", "must be a mapping"),
    ("variants:\n  - name: a\n    otps: {}\n", r"variant 0: unknown field\(s\) \['otps'\]"),
    ("variants:\n  - name: a\n   opts: {}\n", "line 3: not valid YAML"),
])
def test_ablation_file_errors(tmp_path, body, message):
    path = _write(tmp_path / "bad.yaml", body)
    with pytest.raises(ConfigError, match=message) as err:
        load_ablation(str(path), str(DEMO_BASE))
    assert str(path) in str(err.value)


def test_shipped_ablation_files_parse():
    ablations = sorted((REPO / "configs" / "ablations").glob("*.yaml"))
    if not ablations:
        pytest.skip("no configs/ablations/*.yaml yet")
    bases = {"vfn": REPO / "configs" / "video_focalnet" / "kinetics400" / "tiny.yaml",
             "vita": REPO / "configs" / "vita_clip" / "k400" / "vita_clip_b16.yaml"}
    for path in ablations:
        base = bases.get(path.name.split("_")[0])
        variants = load_ablation(str(path), str(base) if base and base.is_file() else None)
        assert variants and len({v.name for v in variants}) == len(variants), path


def test_opts_round_trip_through_the_command_line():
    opts = ["MODEL.FOCAL.DEPTHS", [1, 1, 2, 1], "TRAIN.BASE_LR", 5e-4, "MODEL.FOCAL.ST_DESIGN",
            "spatial", "AUG.SCALE", (0.5, 1.0), "DATA.LABEL_LIST", "", "TAG", "1e-3",
            "TRAIN.AUTO_RESUME", False]
    parsed = get_cfg()
    merge_opts(parsed, opts_to_cli(opts))
    assert all(isinstance(v, str) for v in opts_to_cli(opts))
    assert list(parsed.MODEL.FOCAL.DEPTHS) == [1, 1, 2, 1] and parsed.TRAIN.BASE_LR == 5e-4
    assert parsed.MODEL.FOCAL.ST_DESIGN == "spatial" and tuple(parsed.AUG.SCALE) == (0.5, 1.0)
    assert parsed.DATA.LABEL_LIST == "" and parsed.TAG == "1e-3"
    assert parsed.TRAIN.AUTO_RESUME is False


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ablation_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    import tools.ablate as ablate_tool

    ablation = _write(tmp_path / "designs.yaml", """
variants:
  - name: parallel
    opts: {MODEL.FOCAL.ST_DESIGN: parallel}
  - name: spatial
    opts: {MODEL.FOCAL.ST_DESIGN: spatial}
""")
    out = tmp_path / "abl"
    trained = []
    real_train = experiments._train_in_process
    monkeypatch.setattr(experiments, "_train_in_process",
                        lambda cfg: (trained.append(cfg.OUTPUT), real_train(cfg))[1])
    argv = ["--cfg", str(DEMO_BASE), "--ablation", str(ablation), "--output", str(out),
            "--opts", "DATA.ROOT", str(tmp_path / "data")] + [str(v) for v in TINY]
    argv[argv.index("[1, 1, 1, 1]")] = "[1,1,1,1]"
    assert ablate_tool.main(argv) == 0
    assert trained == [str(out / "parallel"), str(out / "spatial")]

    with open(out / "ablation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == ROW_COLUMNS
    assert [r["variant"] for r in rows] == ["parallel", "spatial"]
    for r in rows:
        results = json.loads((out / r["variant"] / "eval_results.json").read_text())
        assert float(r["top1"]) == pytest.approx(results["top1"], abs=1e-3)
        assert 0 <= float(r["top1"]) <= float(r["top5"]) <= 100
        assert results["num_videos"] == 20 and results["views"]["per_video"] == 3
        for key in ("params_m", "gflops", "train_clips_per_s", "wall_s"):
            assert math.isfinite(float(r[key])) and float(r[key]) > 0, key
    # the parallel design adds temporal modulation: more parameters and FLOPs
    assert float(rows[0]["params_m"]) > float(rows[1]["params_m"])
    assert float(rows[0]["gflops"]) > float(rows[1]["gflops"])
    md = (out / "ablation.md").read_text()
    assert "| parallel |" in md and "| spatial |" in md
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "params (M)" in capsys.readouterr().out

    # a re-run skips finished variants; an interrupted one (no results yet) resumes
    (out / "spatial" / "eval_results.json").unlink()
    trained.clear()
    assert ablate_tool.main(argv) == 0
    assert trained == [str(out / "spatial")]  # only the unfinished variant is touched
    epochs = [json.loads(line) for line in (out / "spatial" / "metrics.jsonl").read_text().splitlines()]
    assert sum(e.get("type") == "train_epoch" for e in epochs) == 1  # resumed, not retrained
    assert (out / "spatial" / "eval_results.json").is_file()

    # the same folder with another config for a finished variant is refused
    argv[argv.index("TRAIN.EPOCHS") + 1] = "2"
    assert ablate_tool.main(argv) == 2
    assert "different config" in capsys.readouterr().err


def test_synthetic_runs_are_tied_to_the_generator_version(monkeypatch):
    import datasets.synthetic as synthetic
    cfg, other = get_cfg(), get_cfg()
    merge_opts(cfg, ["DATA.DATASET", "synthetic"])
    before = experiments._cfg_fingerprint(cfg)
    unrelated = experiments._cfg_fingerprint(other)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert experiments._cfg_fingerprint(cfg) != before  # new data: the old run is not reused
    assert experiments._cfg_fingerprint(other) == unrelated  # other datasets are unaffected
