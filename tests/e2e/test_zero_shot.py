"""Zero-shot protocols: K600 seeded-split logic, the published K600 splits end to end on a
generated Kinetics-600 folder (names as published, some videos missing), and end-to-end
UCF101/HMDB51 evaluation of a tiny random-init Vita-CLIP over three official splits, with the
on-disk text-feature cache."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets
from datasets.synthetic import draw_params, encode_mp4, render_clip
from engine.checkpoint import build_checkpoint
from engine.config import ConfigError, load_cfg
from tools.workflows.zero_shot import (K600_SPLIT_SIZE, RESULTS_FILE, build_zero_shot_model,
                                       k600_split_classes, protocol_splits, run_zero_shot,
                                       split_cfg, split_label_map, split_loader, summarize)

REPO = Path(__file__).resolve().parents[2]
TINY_VITA = REPO / "configs" / "vita_clip" / "tiny.yaml"
FAST = ["DATA.NUM_WORKERS", 0, "TEST.NUM_CLIP", 2, "TEST.NUM_CROP", 1, "TEST.BATCH_SIZE", 4,
        "PRINT_FREQ", 1000, "DATA.NUM_FRAMES", 4, "DATA.FRAME_INTERVAL", 1]


def write_video(path: Path, seed: int, frames: int = 8, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = render_clip(draw_params(np.random.default_rng(seed), seed % 5, size), frames, size)
    path.write_bytes(encode_mp4(clip))


# ---------------------------------------------------------------------------------------------
# K600 split logic
# ---------------------------------------------------------------------------------------------
def _k600_labels(tmp_path: Path, split_size: int = K600_SPLIT_SIZE) -> tuple[Path, list, list]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    names = [f"action {i:03d}" for i in range(600)]
    (tmp_path / "kinetics_600_labels.csv").write_text(
        "id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    novel = names[380:]  # 220 "new" classes
    (tmp_path / "k600_novel_classes.txt").write_text("\n".join(novel) + "\n")
    rng = np.random.default_rng(0)
    splits = []
    for k in (1, 2, 3):
        chosen = [novel[i] for i in rng.permutation(len(novel))[:split_size]]
        (tmp_path / f"k600_novel_split{k}.txt").write_text("\n".join(chosen) + "\n")
        splits.append(chosen)
    return tmp_path, names, splits


def test_k600_split_classes_and_reindexing(tmp_path):
    labels_dir, names, splits = _k600_labels(tmp_path)
    got = k600_split_classes(2, labels_dir)
    assert got == splits[1] and len(got) == 160
    mapping = split_label_map(names, got)
    assert len(mapping) == 160
    for dataset_label, split_label in mapping.items():  # label -> position in the split file
        assert got[split_label] == names[dataset_label]
    # names match case- and underscore-insensitively, unknown ones are an error
    assert split_label_map(["Brush_Hair", "cartwheel"], ["cartwheel", "brush hair"]) == {1: 0, 0: 1}
    with pytest.raises(ConfigError, match="not in the dataset"):
        split_label_map(names, ["no such class"])
    with pytest.raises(ConfigError, match="1..3"):
        k600_split_classes(4, labels_dir)


def test_k600_split_file_errors(tmp_path):
    labels_dir, names, _ = _k600_labels(tmp_path)
    (labels_dir / "k600_novel_split1.txt").write_text("\n".join(names[380:500]) + "\n")
    with pytest.raises(ConfigError, match="expected 160"):
        k600_split_classes(1, labels_dir)
    (labels_dir / "k600_novel_split1.txt").write_text("\n".join(names[:160]) + "\n")
    with pytest.raises(ConfigError, match="not among the novel"):
        k600_split_classes(1, labels_dir)


def test_k600_loader_keeps_split_videos_reindexed(tmp_path):
    labels_dir, names, splits = _k600_labels(tmp_path / "labels")
    root = tmp_path / "k600"
    split1 = splits[0]
    inside = [names.index(split1[5]), names.index(split1[0])]
    outside = [i for i in range(600) if names[i] not in split1][:2]
    rows = []
    for n, label in enumerate(inside + outside):
        stem = f"vid{n:08d}"
        write_video(root / "val" / f"{stem}_000000_000010.mp4", n, frames=6, size=32)
        rows.append(f"{names[label]},{stem},0,10,val")
    (root / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                  + "\n".join(rows) + "\n")
    cfg = load_cfg(str(TINY_VITA), ["DATA.ROOT", str(root), "DATA.DATASET", "kinetics400",
                                    "DATA.VAL_FILE", "somewhere/else.csv"] + FAST)
    specs = protocol_splits(cfg, "k600_seeded", labels_dir)
    assert [s.name for s in specs] == ["split1", "split2", "split3"]
    scfg = split_cfg(cfg, specs[0])
    assert scfg.DATA.DATASET == "kinetics600" and scfg.DATA.VAL_FILE == ""
    loader, classes = split_loader(scfg, specs[0])
    assert classes == split1
    samples = loader.dataset.samples
    assert sorted(label for _, label in samples) == [0, 5]
    assert len(loader.dataset) == 2


def test_bundled_k600_split_files_are_consistent():
    cfg = load_cfg(str(TINY_VITA))
    specs = protocol_splits(cfg, "k600_seeded")  # the lists bundled with the datasets package
    novel = datasets.read_class_names(datasets.bundled_class_file("k600_novel_classes.txt"))
    assert len(novel) == 220
    seen = set()
    for spec in specs:
        assert len(spec.keep_classes) == 160 and len(set(spec.keep_classes)) == 160
        seen.add(tuple(spec.keep_classes))
    assert len(seen) == 3  # three different splits


def test_summarize_uses_population_std():
    rows = [{"split": f"split{i}", "num_classes": 5, "num_videos": 10, "top1": t1, "top5": t5}
            for i, (t1, t5) in enumerate([(50.0, 90.0), (60.0, 100.0), (70.0, 95.0)], 1)]
    out = summarize(rows)
    assert out["mean_top1"] == pytest.approx(60.0)
    assert out["std_top1"] == pytest.approx(np.sqrt(200 / 3))  # ddof=0
    assert out["mean_top5"] == pytest.approx(95.0)
    assert out["std_top5"] == pytest.approx(np.std([90.0, 100.0, 95.0]))


# ---------------------------------------------------------------------------------------------
# End to end on UCF101 / HMDB51 layouts
# ---------------------------------------------------------------------------------------------
UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "Basketball"]
HMDB_CLASSES = ["brush_hair", "cartwheel", "catch", "chew"]


def _ucf_layout(root: Path) -> dict:
    """3 classes x 4 videos; split k tests groups with g % 3 == k - 1 (counts differ per split)."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    tests = {1: [], 2: [], 3: []}
    trains = {1: [], 2: [], 3: []}
    seed = 0
    for label, name in enumerate(UCF_CLASSES):
        for g in range(4):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.avi"
            write_video(root / "UCF-101" / rel, seed)
            seed += 1
            for k in (1, 2, 3):
                (tests if g % 3 == k - 1 else trains)[k].append((rel, label))
    for k in (1, 2, 3):
        (lists / f"testlist0{k}.txt").write_text("".join(f"{r}\n" for r, _ in tests[k]))
        (lists / f"trainlist0{k}.txt").write_text("".join(f"{r} {l + 1}\n" for r, l in trains[k]))
    return {k: len(v) for k, v in tests.items()}


def _hmdb_layout(root: Path) -> dict:
    """4 classes x 3 videos; split k marks video k-1 of every class as test (2) plus one more for
    split 1, the rest train (1) or unused (0)."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    counts = {1: 0, 2: 0, 3: 0}
    seed = 100
    for name in HMDB_CLASSES:
        videos = [f"{name}_clip{j}.avi" for j in range(3)]
        for v in videos:
            write_video(root / "videos" / name / v, seed)
            seed += 1
        for k in (1, 2, 3):
            marks = ["1", "0", "1"]
            marks[k - 1] = "2"
            if k == 1:
                marks[2] = "2"
            counts[k] += marks.count("2")
            (splits / f"{name}_test_split{k}.txt").write_text(
                "".join(f"{v} {m}\n" for v, m in zip(videos, marks)))
    return counts


@pytest.fixture(scope="module")
def vita_checkpoint(tmp_path_factory):
    """A tiny random-init Vita-CLIP (CSC text context over 3 'training' classes), saved the way
    the reference does: {'model': state_dict with `module.` prefixes}."""
    import vita_clip
    tmp = tmp_path_factory.mktemp("vita")
    labels = tmp / "train_classes.txt"
    labels.write_text("riding a bike\nswimming\ncooking\n")
    cfg = load_cfg(str(TINY_VITA), ["DATA.LABEL_LIST", str(labels)] + FAST)
    torch.manual_seed(0)
    model = vita_clip.build_model(cfg, datasets.class_names(cfg))
    state = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    path = tmp / "reference_style.pth"
    torch.save({"model": state, "next_step": 10}, path)
    ours = tmp / "engine_format.pth"
    torch.save(build_checkpoint(model, epoch=0, iteration=1, max_accuracy=0.0,
                                config_yaml=cfg.dump()), ours)
    return path, labels, ours


def _check_results(path: Path, expected_videos: dict, num_classes: int) -> dict:
    data = json.loads(path.read_text())
    assert {"splits", "mean_top1", "std_top1", "mean_top5", "std_top5"} <= set(data)
    assert [s["split"] for s in data["splits"]] == ["split1", "split2", "split3"]
    for s in data["splits"]:
        k = int(s["split"][-1])
        assert s["num_videos"] == expected_videos[k]
        assert s["num_classes"] == num_classes
        assert 0.0 <= s["top1"] <= s["top5"] <= 100.0
    top1 = [s["top1"] for s in data["splits"]]
    top5 = [s["top5"] for s in data["splits"]]
    assert data["mean_top1"] == pytest.approx(np.mean(top1))
    assert data["std_top1"] == pytest.approx(np.std(top1))
    assert data["mean_top5"] == pytest.approx(np.mean(top5))
    assert data["std_top5"] == pytest.approx(np.std(top5))
    assert data["text_prompts"] == ["class-only"]  # CSC context never reaches unseen classes
    return data


@pytest.mark.slow
def test_zero_shot_ucf101_and_hmdb51_end_to_end(tmp_path, vita_checkpoint, monkeypatch, capsys):
    import tools.zero_shot as zero_shot_tool
    from vita_clip.model import VitaCLIP

    checkpoint, train_labels, ours = vita_checkpoint
    ucf_counts = _ucf_layout(tmp_path / "ucf101")
    hmdb_counts = _hmdb_layout(tmp_path / "hmdb51")
    calls = []
    original = VitaCLIP.encode_text

    def counting(self, class_names=None):
        calls.append(list(class_names) if class_names is not None else None)
        return original(self, class_names)

    monkeypatch.setattr(VitaCLIP, "encode_text", counting)
    out = tmp_path / "out"
    common = ["DATA.LABEL_LIST", str(train_labels), "OUTPUT", str(out)] + FAST

    cfg = load_cfg(str(TINY_VITA), ["DATA.ROOT", str(tmp_path / "ucf101")] + common)
    run_zero_shot(cfg, str(checkpoint), "ucf101", log=lambda *_: None)
    ucf_first = _check_results(out / RESULTS_FILE, ucf_counts, len(UCF_CLASSES))
    assert calls == [UCF_CLASSES]  # one class list: encoded once for all three splits
    cache_files = sorted((out / "text_cache").glob("*.pt"))
    assert len(cache_files) == 1

    # the command-line tool on HMDB51 (class names = sorted folder names)
    argv = ["--cfg", str(TINY_VITA), "--checkpoint", str(checkpoint), "--protocol", "hmdb51",
            "--opts", "DATA.ROOT", str(tmp_path / "hmdb51")] + [str(v) for v in common]
    assert zero_shot_tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "mean±std" in printed and "split3" in printed
    _check_results(out / RESULTS_FILE, hmdb_counts, len(HMDB_CLASSES))
    assert calls[1:] == [HMDB_CLASSES]

    # a second UCF101 run, from the same weights saved in the engine's own format, reads the
    # cached text features: nothing is encoded again
    calls.clear()
    stamp = [f.stat().st_mtime_ns for f in cache_files]
    first = json.loads((out / RESULTS_FILE).read_text())
    run_zero_shot(cfg, str(ours), "ucf101", log=lambda *_: None)
    assert calls == []
    assert [f.stat().st_mtime_ns for f in cache_files] == stamp
    again = _check_results(out / RESULTS_FILE, ucf_counts, len(UCF_CLASSES))
    assert again != first  # the file now holds the UCF101 results, not HMDB51's
    assert again["splits"] == ucf_first["splits"]  # same weights, same numbers


def test_zero_shot_errors(tmp_path, vita_checkpoint):
    checkpoint, _, _ = vita_checkpoint
    cfg = load_cfg(str(TINY_VITA), ["OUTPUT", str(tmp_path)])
    with pytest.raises(ConfigError, match="custom: set DATA.LABEL_LIST"):
        protocol_splits(cfg, "custom")
    with pytest.raises(ConfigError, match="unknown zero-shot protocol"):
        protocol_splits(cfg, "k700")
    focalnet = load_cfg(None, ["OUTPUT", str(tmp_path)])
    with pytest.raises(ConfigError, match="key MODEL.TYPE: videofocalnet_tiny has no text enc"):
        build_zero_shot_model(focalnet, str(checkpoint), "ucf101")


def test_zero_shot_model_without_the_training_class_list(tmp_path, vita_checkpoint):
    """A reference-style checkpoint (no stored config) and a config whose class list does not
    fit it: the model is built with placeholder names of the checkpoint's class count."""
    checkpoint, train_labels, ours = vita_checkpoint
    cfg = load_cfg(str(TINY_VITA), ["OUTPUT", str(tmp_path)] + FAST)  # synthetic: 5 classes
    model = build_zero_shot_model(cfg, str(checkpoint), "ucf101")
    assert model.class_names == ["training class 0", "training class 1", "training class 2"]
    assert not model.training
    # our own checkpoint stores its config, whose class list names the training classes
    model = build_zero_shot_model(cfg, str(ours), "ucf101")
    assert model.class_names == datasets.read_class_names(str(train_labels))


# ---------------------------------------------------------------------------------------------
# The published Kinetics-600 splits, end to end
# ---------------------------------------------------------------------------------------------
def _k600_published_copy(tmp_path: Path) -> tuple[Path, Path, dict]:
    """Small copies of the published split lists (the first 2 videos of 2 classes of each split;
    file names as published) with the real class files, and a Kinetics-600 folder
    holding all but one of those videos: most under the folder their list names, one elsewhere
    (found by name). Returns (protocols dir, dataset root, split -> (listed, found))."""
    protocols = tmp_path / "protocols" / "k600_zero_shot"
    protocols.mkdir(parents=True)
    root = tmp_path / "k600"
    chosen = {}
    for s in (1, 2, 3):
        published = Path(datasets.bundled_protocol_file(f"k600_zero_shot/split{s}_val.txt"))
        (protocols / f"split{s}_classes.csv").write_bytes(
            Path(datasets.bundled_protocol_file(f"k600_zero_shot/split{s}_classes.csv"))
            .read_bytes())
        lines = published.read_text().splitlines()
        labels = ("0", "10") if s == 1 else ("0", "1")  # split 1's class 10 is in no other split
        chosen[s] = [ln for label in labels
                     for ln in [x for x in lines if x.split()[1] == label][:2]]
        (protocols / f"split{s}_val.txt").write_text("\n".join(chosen[s]) + "\n")
    others = {ln.split()[0] for s in (2, 3) for ln in chosen[s]}
    absent = next(ln.split()[0] for ln in chosen[1] if ln.split()[0] not in others)
    videos = sorted({ln.split()[0] for lines in chosen.values() for ln in lines} - {absent})
    for n, rel in enumerate(videos):
        folder, name = rel.split("/")
        write_video(root / ("moved" if n % 3 == 0 else folder) / name, n, frames=6, size=32)
    counts = {f"split{s}": (len(chosen[s]), sum(ln.split()[0] != absent for ln in chosen[s]))
              for s in (1, 2, 3)}
    return protocols.parent, root, counts


@pytest.mark.slow
def test_zero_shot_k600_published_splits_end_to_end(tmp_path, vita_checkpoint, capsys):
    import tools.zero_shot as zero_shot_tool

    checkpoint, train_labels, _ = vita_checkpoint
    protocols, root, counts = _k600_published_copy(tmp_path)
    out = tmp_path / "out"
    argv = ["--cfg", str(TINY_VITA), "--checkpoint", str(checkpoint), "--protocol", "k600",
            "--protocols-dir", str(protocols), "--opts", "DATA.ROOT", str(root),
            "DATA.LABEL_LIST", str(train_labels), "OUTPUT", str(out)] + [str(v) for v in FAST]
    assert zero_shot_tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "missing" in printed and "1 of 4 listed videos missing locally" in printed
    data = json.loads((out / RESULTS_FILE).read_text())
    assert data["protocol"] == "k600" and data["text_prompts"] == ["class-only"]
    for row in data["splits"]:
        listed, found = counts[row["split"]]
        assert row["num_classes"] == 160
        assert (row["num_listed"], row["num_videos"], row["num_missing"]) == \
            (listed, found, listed - found)
        assert 0.0 <= row["top1"] <= row["top5"] <= 100.0
    assert data["mean_top1"] == pytest.approx(np.mean([r["top1"] for r in data["splits"]]))

    # the published lists define the protocol: --opts cannot swap them for other files
    specs = protocol_splits(load_cfg(str(TINY_VITA)), "k600", protocols_dir=protocols)
    scfg = split_cfg(load_cfg(str(TINY_VITA)), specs[0],
                     ["DATA.VAL_FILE", "other.txt", "DATA.ROOT", str(root)])
    assert scfg.DATA.VAL_FILE == str(protocols / "k600_zero_shot" / "split1_val.txt")
    assert scfg.DATA.ROOT == str(root) and scfg.DATA.FIND_BY_NAME
    assert zero_shot_tool.main(argv[:6] + ["--protocols-dir", str(tmp_path / "nowhere")]
                               + argv[8:]) == 2
    assert "protocol file not found" in capsys.readouterr().err
