"""The published protocol files shipped in datasets/protocols/ (K600 zero-shot splits, K-shot
lists, base/novel splits) and the data-layer features they need: bundled paths, list entries
found by file name under DATA.ROOT, layouts that follow a class list of the same classes."""
from __future__ import annotations

import collections
import logging
import os
from pathlib import Path

import numpy as np
import pytest

import datasets
from datasets import AnnotationError, read_class_names, read_list_file
from datasets.layouts import PROTOCOLS_DIR, resolve_bundled_path
from datasets.synthetic import draw_params, encode_mp4, render_clip
from engine.config import load_cfg

FEW_SHOT = {"hmdb": ("hmdb_51_labels.csv", 51), "ucf": ("ucf_101_labels.csv", 101),
            "ssv2": ("ssv2_labels.csv", 174)}
BASE_NOVEL = {"hmdb": ("hmdb_51", 26, 25), "ucf": ("ucf_101", 51, 50),
              "ssv2": ("ssv2_174", 87, 87), "k400": ("kinetics_400", 200, 200)}


def write_video(path: Path, seed: int = 0, frames: int = 6, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = render_clip(draw_params(np.random.default_rng(seed), seed % 5, size), frames, size)
    path.write_bytes(encode_mp4(clip))


def _labels(name: str) -> list[str]:
    return read_class_names(datasets.bundled_protocol_file(f"labels/{name}"))


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


# ---------------------------------------------------------------------------------------------
# The bundled files
# ---------------------------------------------------------------------------------------------
def test_k600_published_splits():
    novel = {_norm(n) for n in read_class_names(
        datasets.bundled_class_file("k600_novel_classes.txt"))}
    k600 = {_norm(n) for n in datasets.default_class_names("kinetics600")}
    seen = set()
    for s in (1, 2, 3):
        classes = read_class_names(datasets.bundled_protocol_file(
            f"k600_zero_shot/split{s}_classes.csv"))
        assert len(classes) == 160 and {_norm(c) for c in classes} <= novel <= k600
        samples = read_list_file(datasets.bundled_protocol_file(
            f"k600_zero_shot/split{s}_val.txt"), "", len(classes))
        assert len(samples) > 13_000
        assert {label for _, label in samples} == set(range(160))
        assert all(p.split("/")[0] in ("train", "val", "test") for p, _ in samples)
        seen.add(tuple(classes))
    assert len(seen) == 3


@pytest.mark.parametrize("prefix", sorted(FEW_SHOT))
def test_few_shot_lists(prefix):
    label_file, count = FEW_SHOT[prefix]
    assert len(_labels(label_file)) == count
    for shots in (2, 4, 8, 16):
        samples = read_list_file(datasets.bundled_protocol_file(
            f"few_shot/{prefix}_train1_{shots}shot.txt"), "", count)
        per_class = collections.Counter(label for _, label in samples)
        assert set(per_class) == set(range(count))  # every class, at most K videos each
        assert max(per_class.values()) == shots and min(per_class.values()) >= shots - 1
        assert all("/" not in path for path, _ in samples)  # bare names: found by name


@pytest.mark.parametrize("prefix", sorted(BASE_NOVEL))
def test_base_to_novel_lists(prefix):
    stem, num_base, num_novel = BASE_NOVEL[prefix]
    base = _labels(f"{stem}_base_labels.csv")
    novel = _labels(f"{stem}_novel_labels.csv")
    assert (len(base), len(novel)) == (num_base, num_novel)
    assert not {_norm(n) for n in base} & {_norm(n) for n in novel}
    for name, count in ((f"{prefix}_base_val.txt", num_base),
                        (f"{prefix}_novel_val.txt", num_novel)):
        samples = read_list_file(datasets.bundled_protocol_file(f"base_to_novel/{name}"), "", count)
        assert {label for _, label in samples} == set(range(count))
    for s in (1, 2, 3):
        samples = read_list_file(datasets.bundled_protocol_file(
            f"base_to_novel/{prefix}_fs_base_s{s}_train.txt"), "", num_base)
        assert max(collections.Counter(label for _, label in samples).values()) == 16


def test_published_class_orders_against_the_bundled_lists():
    """UCF101 and SSv2 list their classes in the order of classInd.txt / labels.json (as the
    bundled lists); HMDB51's published order sorts the split-file names, so `kick ball` comes
    before `kick` and `sword exercise` before `sword` (the layout sorts folder names)."""
    assert _labels("ucf_101_labels.csv") == datasets.default_class_names("ucf101")
    assert _labels("ssv2_labels.csv") == datasets.default_class_names("ssv2")
    published = [_norm(n) for n in _labels("hmdb_51_labels.csv")]
    layout = [_norm(n) for n in datasets.default_class_names("hmdb51")]
    assert sorted(published) == sorted(layout) and published != layout
    assert published.index("kick ball") < published.index("kick")
    assert layout.index("kick") < layout.index("kick ball")


def test_bundled_protocol_paths_resolve_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_bundled_path("protocols/few_shot/ucf_train1_2shot.txt") == \
        str(PROTOCOLS_DIR / "few_shot" / "ucf_train1_2shot.txt")
    assert resolve_bundled_path("datasets/protocols/labels/ucf_101_labels.csv") == \
        str(PROTOCOLS_DIR / "labels" / "ucf_101_labels.csv")
    assert resolve_bundled_path("protocols/nope.txt") == "protocols/nope.txt"
    cfg = load_cfg(None, ["DATA.DATASET", "ucf101", "DATA.TRAIN_FILE",
                          "protocols/few_shot/ucf_train1_2shot.txt",
                          "DATA.LABEL_LIST", "protocols/labels/ucf_101_labels.csv"])
    assert datasets.annotation_file(cfg, "train") == \
        str(PROTOCOLS_DIR / "few_shot" / "ucf_train1_2shot.txt")
    assert len(datasets.class_names(cfg)) == 101
    with pytest.raises(FileNotFoundError, match="k600_zero_shot"):
        datasets.bundled_protocol_file("k700/split1.txt")


# ---------------------------------------------------------------------------------------------
# Entries found by file name
# ---------------------------------------------------------------------------------------------
def test_find_by_name(tmp_path, caplog):
    root = tmp_path / "ucf"
    write_video(root / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi", 1)
    write_video(root / "UCF-101" / "Typing" / "v_Typing_g10_c04.avi", 2)
    write_video(root / "train" / "abc_000010_000020.mp4", 3)
    write_video(root / "val" / "xyz_000001_000011.webm", 4)  # another extension, other folder
    listing = tmp_path / "list.txt"
    listing.write_text("v_Archery_g01_c01.avi 0\nv_Typing_g10_c04.avi 1\nv_Gone_g01_c01.avi 1\n"
                       "train/abc_000010_000020.mp4 0\ntrain/xyz_000001_000011.mp4 1\n")
    cfg = load_cfg(None, ["DATA.ROOT", str(root), "DATA.TRAIN_FILE", str(listing),
                          "DATA.FIND_BY_NAME", "True", "MODEL.NUM_CLASSES", "2"])
    with caplog.at_level(logging.WARNING):
        samples, _ = datasets.load_annotations(cfg, "train")
    assert [(os.path.relpath(p, root), label) for p, label in samples] == [
        ("UCF-101/Archery/v_Archery_g01_c01.avi", 0), ("UCF-101/Typing/v_Typing_g10_c04.avi", 1),
        ("train/abc_000010_000020.mp4", 0), ("val/xyz_000001_000011.webm", 1)]
    assert any("1 of 5 listed videos are missing" in r.getMessage() for r in caplog.records)
    # without the key, entries are paths under DATA.ROOT, as before
    plain = load_cfg(None, ["DATA.ROOT", str(root), "DATA.TRAIN_FILE", str(listing)])
    assert datasets.load_annotations(plain, "train")[0][0] == (str(root / "v_Archery_g01_c01.avi"),
                                                               0)
    listing.write_text("v_Gone_g01_c01.avi 1\n")
    with pytest.raises(AnnotationError, match="none of the 1 listed videos were found"):
        datasets.load_annotations(cfg, "train")


# ---------------------------------------------------------------------------------------------
# Layouts with their own class names follow DATA.LABEL_LIST of the same classes
# ---------------------------------------------------------------------------------------------
def test_hmdb51_layout_follows_a_reordered_class_list(tmp_path):
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in ("kick", "kick_ball", "wave"):
        (splits / f"{cls}_test_split1.txt").write_text(f"{cls}_a.avi 1\n{cls}_b.avi 2\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,name\n0,kick ball\n1,kick\n2,wave\n")  # the published HMDB51 order
    common = ["DATA.DATASET", "hmdb51", "DATA.ROOT", str(root), "MODEL.NUM_CLASSES", "3"]
    layout_order = datasets.load_annotations(load_cfg(None, common), "test")
    assert layout_order[1] == ["kick", "kick_ball", "wave"]
    samples, classes = datasets.load_annotations(
        load_cfg(None, common + ["DATA.LABEL_LIST", str(labels)]), "test")
    assert classes == ["kick ball", "kick", "wave"]
    assert [(os.path.basename(p), label) for p, label in samples] == [
        ("kick_b.avi", 1), ("kick_ball_b.avi", 0), ("wave_b.avi", 2)]
    labels.write_text("id,name\n0,kick ball\n1,kick\n2,run\n")
    with pytest.raises(AnnotationError, match="class list differs from the hmdb51 layout"):
        datasets.load_annotations(load_cfg(None, common + ["DATA.LABEL_LIST", str(labels)]),
                                  "test")
