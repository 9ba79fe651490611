"""Few-shot and base-to-novel protocols end to end (tools/protocol.py), and the supervised SSv2
config, with a tiny Vita-CLIP on generated datasets laid out like the real ones. The runs read
small copies of the published lists (file names as published) from a --protocols-dir; the shipped
configs are the base of the tiny test configs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import datasets
import tools.workflows.experiments as experiments
from datasets.synthetic import draw_params, encode_mp4, render_clip
from engine.config import ConfigError, load_cfg
from tools.workflows.protocols import (BASE2NOVEL_DATASETS, FEW_SHOT_DATASETS,
                                       base2novel_variants, few_shot_variants, harmonic_mean)

REPO = Path(__file__).resolve().parents[2]
TINY_VITA = REPO / "configs" / "vita_clip" / "tiny.yaml"


def write_video(path: Path, seed: int, frames: int = 6, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = render_clip(draw_params(np.random.default_rng(seed), seed % 5, size), frames, size)
    path.write_bytes(encode_mp4(clip))


def tiny_config(tmp_path: Path, shipped: str) -> Path:
    """A shipped protocol config with the tiny Vita-CLIP towers and a seconds-long recipe."""
    vita = dict(yaml.safe_load(TINY_VITA.read_text())["MODEL"]["VITA"])
    vita.pop("TEXT_PROMPT_CSC")  # the shipped config's choice stands
    body = {"_BASE_": str(REPO / "configs" / "vita_clip" / shipped),
            "MODEL": {"VITA": vita},
            "DATA": {"NUM_FRAMES": 2, "IMG_SIZE": 32, "INPUT_SIZE": 32, "BATCH_SIZE": 2,
                     "NUM_WORKERS": 0, "FRAME_INTERVAL": 1},
            "AUG": {"AUTO_AUGMENT": ""},
            # one epoch, not the released recipe's 30,000 updates (TRAIN.TOTAL_STEPS)
            "TRAIN": {"EPOCHS": 1, "EVAL_FREQ": 1, "TOTAL_STEPS": 0},
            "TEST": {"NUM_CLIP": 1, "NUM_CROP": 1, "BATCH_SIZE": 4},
            "PRINT_FREQ": 1000, "SAVE_FREQ": 1}
    path = tmp_path / f"tiny_{shipped.replace('/', '_')}"
    path.write_text(yaml.safe_dump(body))
    return path


def _published(relative: str) -> list[str]:
    return Path(datasets.bundled_protocol_file(relative)).read_text().splitlines()


def _copy(protocols: Path, relative: str, lines: list[str] | None = None) -> None:
    target = protocols / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if lines is None:
        target.write_bytes(Path(datasets.bundled_protocol_file(relative)).read_bytes())
    else:
        target.write_text("\n".join(lines) + "\n")


def _first(lines: list[str], labels: tuple, per_class: int) -> list[str]:
    return [ln for label in labels for ln in
            [x for x in lines if x.split()[1] == str(label)][:per_class]]


# ---------------------------------------------------------------------------------------------
# Runs of a protocol
# ---------------------------------------------------------------------------------------------
def test_protocol_runs_and_configs():
    runs = few_shot_variants("hmdb51", (16, 2))
    assert [v.name for v in runs] == ["16shot", "2shot"]
    assert runs[0].opts["DATA.TRAIN_FILE"] == "protocols/few_shot/hmdb_train1_16shot.txt"
    assert runs[0].opts["DATA.LABEL_LIST"] == "protocols/labels/hmdb_51_labels.csv"
    pairs = base2novel_variants("kinetics400")
    assert [v.name for v, _ in pairs] == ["s1", "s2", "s3"]
    assert pairs[2][0].opts["DATA.TRAIN_FILE"] == \
        "protocols/base_to_novel/k400_fs_base_s3_train.txt"
    assert pairs[0][1]["DATA.TEST_FILE"] == "protocols/base_to_novel/k400_novel_val.txt"
    assert pairs[0][1]["MODEL.NUM_CLASSES"] == 200
    with pytest.raises(ConfigError, match="among 2, 4, 8, 16"):
        few_shot_variants("ucf101", (3,))
    assert harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)
    assert harmonic_mean(0.0, 0.0) == 0.0
    # every shipped protocol config: the dataset of its table, its class list, a published file
    for name in FEW_SHOT_DATASETS:
        cfg = load_cfg(f"configs/vita_clip/few_shot/{name}.yaml")
        assert cfg.DATA.DATASET == name and cfg.DATA.FIND_BY_NAME
        assert len(datasets.class_names(cfg)) == cfg.MODEL.NUM_CLASSES == \
            FEW_SHOT_DATASETS[name].num_classes
        assert Path(datasets.annotation_file(cfg, "train")).is_file()
    for name, data in BASE2NOVEL_DATASETS.items():
        cfg = load_cfg(f"configs/vita_clip/base2novel/{name.replace('kinetics400', 'k400')}.yaml")
        assert cfg.DATA.DATASET == name and not cfg.MODEL.VITA.TEXT_PROMPT_CSC
        assert len(datasets.class_names(cfg)) == data.num_base
        assert Path(datasets.annotation_file(cfg, "test")).is_file()
    ssv2 = load_cfg("configs/vita_clip/ssv2/vita_clip_b16.yaml")
    assert ssv2.DATA.DATASET == "ssv2" and ssv2.MODEL.NUM_CLASSES == 174
    assert datasets.class_names(ssv2) == datasets.default_class_names("ssv2")


def test_protocol_tool_errors(tmp_path, capsys):
    import tools.protocol as protocol_tool
    cfg = tiny_config(tmp_path, "few_shot/hmdb51.yaml")
    base = ["--cfg", str(cfg), "--output", str(tmp_path / "out")]
    assert protocol_tool.main(["--protocol", "few_shot", "--shots", "3"] + base) == 2
    assert "among 2, 4, 8, 16" in capsys.readouterr().err
    assert protocol_tool.main(["--protocol", "base2novel", "--cfg", str(TINY_VITA), "--output",
                               str(tmp_path / "out")]) == 2
    assert "published files for hmdb51, ucf101, ssv2, kinetics400, not 'synthetic'" in \
        capsys.readouterr().err
    assert protocol_tool.main(["--protocol", "few_shot", "--protocols-dir",
                               str(tmp_path / "none")] + base) == 2
    assert "protocol file not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Few-shot on a generated HMDB51
# ---------------------------------------------------------------------------------------------
HMDB_CLASSES = (0, 20, 21)  # published order: brush hair, kick ball, kick


def _hmdb_few_shot_copy(tmp_path: Path) -> tuple[Path, Path, dict]:
    """Small copies of the K-shot lists (1 or 2 videos of 3 classes, one of them the
    `kick ball` / `kick` pair whose labels the HMDB51 layout orders the other way) and an HMDB51
    folder: all 51 official split-1 files, videos of those 3 classes (one listed video missing),
    2 test videos per class."""
    protocols, root = tmp_path / "protocols", tmp_path / "hmdb51"
    _copy(protocols, "labels/hmdb_51_labels.csv")
    published = datasets.read_class_names(str(protocols / "labels" / "hmdb_51_labels.csv"))
    folders = {label: published[label].replace(" ", "_") for label in HMDB_CLASSES}
    listed, train = {}, {}
    for k in (2, 4, 8, 16):
        lines = _first(_published(f"few_shot/hmdb_train1_{k}shot.txt"), HMDB_CLASSES,
                       1 if k == 2 else 2)
        _copy(protocols, f"few_shot/hmdb_train1_{k}shot.txt", lines)
        listed[k] = len(lines)
        for line in lines:
            name, label = line.split()
            train[name] = int(label)
    missing = _first(_published("few_shot/hmdb_train1_16shot.txt"), (21,), 2)[-1].split()[0]
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for folder in datasets.default_class_names("hmdb51"):
        (splits / f"{folder}_test_split1.txt").write_text("")
    seed = 0
    for label, folder in folders.items():
        marks = [(name, 1) for name, lab in train.items() if lab == label]
        marks += [(f"{folder}_test_{j}.avi", 2) for j in range(2)]
        (splits / f"{folder}_test_split1.txt").write_text(
            "".join(f"{name} {mark}\n" for name, mark in marks))
        for name, _ in marks:
            if name != missing:
                write_video(root / "videos" / folder / name, seed)
                seed += 1
    found = {k: listed[k] - (missing in [ln.split()[0] for ln in
                                         (protocols / f"few_shot/hmdb_train1_{k}shot.txt")
                                         .read_text().splitlines()]) for k in listed}
    return protocols, root, {"listed": listed, "found": found, "folders": folders}


@pytest.mark.slow
def test_few_shot_end_to_end_on_a_generated_hmdb51(tmp_path, monkeypatch, capsys):
    import tools.protocol as protocol_tool

    protocols, root, facts = _hmdb_few_shot_copy(tmp_path)
    out = tmp_path / "few_shot"
    trained = []
    real_train = experiments._train_in_process
    monkeypatch.setattr(experiments, "_train_in_process",
                        lambda cfg: (trained.append(cfg.OUTPUT), real_train(cfg))[1])
    argv = ["--protocol", "few_shot", "--cfg", str(tiny_config(tmp_path, "few_shot/hmdb51.yaml")),
            "--output", str(out), "--protocols-dir", str(protocols), "--opts", "DATA.ROOT",
            str(root)]
    assert protocol_tool.main(argv) == 0
    assert trained == [str(out / f"{k}shot") for k in (2, 4, 8, 16)]
    with open(out / "few_shot.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["shots", "top1", "top5", "train_videos", "train_listed",
                             "test_videos"]
    assert [int(r["shots"]) for r in rows] == [2, 4, 8, 16]
    for r in rows:
        k = int(r["shots"])
        assert (int(r["train_videos"]), int(r["train_listed"])) == \
            (facts["found"][k], facts["listed"][k])
        assert int(r["test_videos"]) == 6 and 0.0 <= float(r["top1"]) <= float(r["top5"]) <= 100
    assert facts["found"][16] == facts["listed"][16] - 1
    assert (out / "few_shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "few_shot.md").read_text()
    assert "| K | top-1 (%)" in md and "| 16 |" in md
    assert "tested on official split-1 test videos" in capsys.readouterr().out

    # the test set is the official split 1, labelled in the published class order
    with open(out / "16shot" / "predictions.csv", newline="") as f:
        tested = {Path(r["path"]).parent.name: int(r["label"]) for r in csv.DictReader(f)}
    assert tested == {folder: label for label, folder in facts["folders"].items()}
    results = json.loads((out / "16shot" / "eval_results.json").read_text())
    assert len(results["per_class_acc"]) == 51 and "kick ball" in results["per_class_acc"]

    # running the command again trains nothing
    trained.clear()
    assert protocol_tool.main(argv) == 0
    assert trained == []


# ---------------------------------------------------------------------------------------------
# Base-to-novel on a generated SSv2
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_base2novel_end_to_end_on_a_generated_ssv2(tmp_path, capsys):
    import tools.protocol as protocol_tool

    protocols, root = tmp_path / "protocols", tmp_path / "ssv2"
    for name in ("ssv2_174_base_labels.csv", "ssv2_174_novel_labels.csv"):
        _copy(protocols, f"labels/{name}")
    videos = set()
    for s in (1, 2, 3):
        lines = _first(_published(f"base_to_novel/ssv2_fs_base_s{s}_train.txt"), (0, 1), 2)
        _copy(protocols, f"base_to_novel/ssv2_fs_base_s{s}_train.txt", lines)
        videos |= {ln.split()[0] for ln in lines}
    base = _first(_published("base_to_novel/ssv2_base_val.txt"), (0, 1), 2)
    novel = _first(_published("base_to_novel/ssv2_novel_val.txt"), (0, 1, 2), 1)
    _copy(protocols, "base_to_novel/ssv2_base_val.txt", base)
    _copy(protocols, "base_to_novel/ssv2_novel_val.txt", novel)
    videos |= {ln.split()[0] for ln in base + novel[:-1]}  # the last novel video is missing
    for seed, name in enumerate(sorted(videos)):
        write_video(root / "20bn-something-something-v2" / name, seed)

    out = tmp_path / "b2n"
    argv = ["--protocol", "base2novel", "--cfg", str(tiny_config(tmp_path, "base2novel/ssv2.yaml")),
            "--output", str(out), "--protocols-dir", str(protocols), "--opts", "DATA.ROOT",
            str(root)]
    assert protocol_tool.main(argv) == 0
    with open(out / "base2novel.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["train_set"] for r in rows] == ["s1", "s2", "s3", "mean"]
    for r in rows[:3]:
        assert int(r["train_videos"]) == 4 and int(r["base_videos"]) == 4
        assert int(r["novel_videos"]) == 2
        b, n = float(r["base"]), float(r["novel"])
        assert float(r["hm"]) == pytest.approx(harmonic_mean(b, n), abs=1e-3)
    mean = rows[3]
    b = np.mean([float(r["base"]) for r in rows[:3]])
    n = np.mean([float(r["novel"]) for r in rows[:3]])
    assert float(mean["base"]) == pytest.approx(b, abs=1e-3)
    assert float(mean["novel"]) == pytest.approx(n, abs=1e-3)
    assert float(mean["hm"]) == pytest.approx(harmonic_mean(b, n), abs=1e-3)
    summary = json.loads((out / "base2novel.json").read_text())
    assert summary["rows"][0]["novel_listed"] == 3
    assert summary["rows"][0]["novel_text_prompts"] == ["learned-generic"]  # shared context
    novel_results = json.loads((out / "s1" / "novel" / "zero_shot_results.json").read_text())
    assert novel_results["protocol"] == "custom"
    assert novel_results["splits"][0]["num_classes"] == 87
    assert novel_results["splits"][0]["num_missing"] == 1
    md = (out / "base2novel.md").read_text()
    assert "| **mean** |" in md and "learned-generic" in md
    printed = capsys.readouterr().out
    assert "base-to-novel ssv2: s3 (3/3)" in printed and "HM" in printed


# ---------------------------------------------------------------------------------------------
# Supervised SSv2
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_supervised_ssv2_config_on_a_generated_ssv2(tmp_path):
    """The official SSv2 layout: labels.json (here listing the 174 names in another id order
    than the bundled list the model uses), train/validation.json entries whose templates hold
    brackets, <id>.webm videos. Labels are renumbered to the model's class order."""
    import tools.train as train_tool

    names = datasets.default_class_names("ssv2")
    shuffled = list(reversed(names))
    root = tmp_path / "ssv2"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "labels.json").write_text(
        json.dumps({name: str(i) for i, name in enumerate(shuffled)}))
    templates = {"Putting something on a surface": "Putting [something] on a surface",
                 "Pushing something from left to right":
                     "Pushing [something] from left to right"}
    entries = [{"id": str(100 + i), "label": "x", "placeholders": ["a cup"],
                "template": templates[name]} for i, name in enumerate(sorted(templates) * 2)]
    (root / "labels" / "train.json").write_text(json.dumps(entries))
    (root / "labels" / "validation.json").write_text(json.dumps(entries[:2]))
    for seed, entry in enumerate(entries):
        write_video(root / f"{entry['id']}.webm", seed)
    cfg_file = tiny_config(tmp_path, "ssv2/vita_clip_b16.yaml")
    out = tmp_path / "run"
    assert train_tool.main(["--cfg", str(cfg_file), "--opts", "DATA.ROOT", str(root),
                            "OUTPUT", str(out)]) == 0
    cfg = load_cfg(str(cfg_file), ["DATA.ROOT", str(root)])
    samples, classes = datasets.load_annotations(cfg, "val")
    assert classes == names and len(classes) == 174
    assert [label for _, label in samples] == [names.index(n) for n in sorted(templates)]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records][-2:] == ["train_epoch", "val"]
    assert records[-1]["num_samples"] == 2 and (out / "latest.pth").is_file()
