"""datasets/labels: the bundled class lists, the layout registry and which names a config means."""
from __future__ import annotations

import filecmp
import re

import pytest

import datasets
from datasets.annotations import AnnotationError, read_class_names
from datasets.layouts import LABELS_DIR, resolve_label_list
from engine.config import ConfigError, get_cfg, load_cfg

BUNDLED_DEFAULTS = {"kinetics400": 400, "kinetics600": 600, "ssv2": 174, "diving48": 48,
                    "activitynet": 200, "hmdb51": 51, "ucf101": 101, "synthetic": 10}


def _norm(name: str) -> str:
    return " ".join(sorted(re.sub(r"[^a-z0-9]+", " ", name.lower()).split()))


@pytest.fixture(scope="module")
def labels():
    return LABELS_DIR


def test_labels_live_in_the_package(labels, repo_root):
    assert labels == repo_root / "datasets" / "labels"
    assert not (repo_root / "configs" / "labels").exists()


@pytest.mark.parametrize("name, count", [
    ("kinetics_400_labels.csv", 400), ("kinetics_600_labels.csv", 600),
    ("ssv2_174_labels.csv", 174), ("diving_48_labels.csv", 48),
    ("activitynet_200_labels.csv", 200), ("k400_classes.txt", 400), ("hmdb51_classes.txt", 51),
    ("ucf101_classes.txt", 101)])
def test_published_lists_copied(labels, shared_dir, name, count):
    assert filecmp.cmp(labels / name, shared_dir / "labels" / name, shallow=False)
    names = read_class_names(str(labels / name))
    assert len(names) == count == len(set(names))


def test_hmdb51_order_is_sorted_folder_names(labels):
    names = read_class_names(str(labels / "hmdb51_classes.txt"))
    assert names == sorted(names)


def test_k600_novel_classes_and_splits(labels):
    k400 = read_class_names(str(labels / "kinetics_400_labels.csv"))
    k600 = read_class_names(str(labels / "kinetics_600_labels.csv"))
    novel = read_class_names(str(labels / "k600_novel_classes.txt"))
    assert len(novel) == 220 == len(set(novel))
    assert set(novel) <= set(k600)
    k400_norm = {_norm(n) for n in k400}
    assert not [n for n in novel if _norm(n) in k400_norm]
    assert len(set(k600) - set(k400)) == 232  # the plain difference the renames correct
    # the renamed K400 classes are not novel
    for renamed in ("dyeing hair", "person collecting garbage", "hugging (not baby)",
                    "passing american football (not in game)"):
        assert renamed in k600 and renamed not in novel
    splits = [read_class_names(str(labels / f"k600_novel_split{k}.txt")) for k in (1, 2, 3)]
    for split in splits:
        assert len(split) == 160 == len(set(split)) and set(split) <= set(novel)
        assert split == [n for n in k600 if n in set(split)]  # K600 order
    assert splits[0] != splits[1] != splits[2]


def test_k600_files_match_generator(labels):
    import tools.make_k600_splits as gen
    assert gen.LABELS == str(labels)
    assert gen.main(["--check"]) == 0


# ------------------------------------------------------------------------------------------------
# default_class_names / class_names
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, count", sorted(BUNDLED_DEFAULTS.items()))
def test_default_class_names(dataset, count):
    names = datasets.default_class_names(dataset)
    assert len(names) == count == len(set(names))


def test_default_class_names_none_and_unknown():
    assert datasets.default_class_names("csv") is None
    with pytest.raises(KeyError, match="kinetics700.*kinetics400"):
        datasets.default_class_names("kinetics700")


def test_class_names_follow_the_config(tmp_path):
    cfg = get_cfg()
    assert cfg.DATA.DATASET == "csv" and datasets.class_names(cfg) is None
    cfg.DATA.DATASET = "ucf101"
    assert datasets.class_names(cfg)[:2] == ["ApplyEyeMakeup", "ApplyLipstick"]
    own = tmp_path / "mine.txt"
    own.write_text("b\n\na\n")
    cfg.DATA.LABEL_LIST = str(own)  # the config's list wins over the bundled one
    assert datasets.class_names(cfg) == ["b", "a"]
    cfg.DATA.LABEL_LIST = str(tmp_path / "missing.txt")
    with pytest.raises(AnnotationError, match="missing.txt.*not found"):
        datasets.class_names(cfg)


@pytest.mark.parametrize("spelling", ["configs/labels/kinetics_400_labels.csv",
                                      "./configs/labels/kinetics_400_labels.csv",
                                      "labels/kinetics_400_labels.csv",
                                      "datasets/labels/kinetics_400_labels.csv"])
def test_old_label_paths_read_the_bundled_file(tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)  # nothing of the checkout is reachable from here
    assert resolve_label_list(spelling) == str(LABELS_DIR / "kinetics_400_labels.csv")
    cfg = get_cfg()
    cfg.DATA.LABEL_LIST = spelling
    assert len(datasets.class_names(cfg)) == 400


def test_a_local_file_shadows_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "kinetics_400_labels.csv").write_text("x\ny\n")
    assert resolve_label_list("labels/kinetics_400_labels.csv") == \
        "labels/kinetics_400_labels.csv"
    assert resolve_label_list("labels/nope.csv") == "labels/nope.csv"  # reported when read


def test_every_shipped_config_label_list_resolves(repo_root, tmp_path, monkeypatch):
    files = sorted((repo_root / "configs").rglob("*.yaml"))
    monkeypatch.chdir(tmp_path)
    checked = 0
    for path in files:
        if "variants" in path.read_text():
            continue  # ablation specs, not configs
        cfg = load_cfg(str(path))
        names = datasets.class_names(cfg)
        if cfg.DATA.LABEL_LIST:
            assert names and len(names) == cfg.MODEL.NUM_CLASSES, path
            checked += 1
    assert checked >= 8


def test_bundled_class_file():
    assert datasets.bundled_class_file("k600_novel_split2.txt").endswith(
        "labels/k600_novel_split2.txt")
    with pytest.raises(FileNotFoundError, match="k400_classes.txt"):
        datasets.bundled_class_file("k700.txt")


# ------------------------------------------------------------------------------------------------
# The layout registry
# ------------------------------------------------------------------------------------------------
def test_builtin_layouts_are_the_config_choices():
    assert set(datasets.layout_names()) == set(BUNDLED_DEFAULTS) | {"csv"}


def test_register_a_layout(tmp_path):
    calls = []

    def read_toy(cfg, split):
        calls.append(split)
        return [(str(tmp_path / f"{split}{i}.mp4"), i % 2) for i in range(3)], ["even", "odd"]

    datasets.register_layout("toy_labels_test", read_toy, default_classes=("even", "odd"))
    try:
        with pytest.raises(ConfigError, match="toy_labels_tset.*toy_labels_test"):
            load_cfg(None, ["DATA.DATASET", "toy_labels_tset"])
        cfg = load_cfg(None, ["DATA.DATASET", "toy_labels_test"])
        assert datasets.default_class_names("toy_labels_test") == ["even", "odd"]
        assert datasets.class_names(cfg) == ["even", "odd"]
        samples, classes = datasets.load_annotations(cfg, "val")
        assert calls == ["val"] and classes == ["even", "odd"]
        assert [label for _, label in samples] == [0, 1, 0]
    finally:
        datasets.layouts.LAYOUTS.pop("toy_labels_test")
    with pytest.raises(TypeError, match="callable"):
        datasets.register_layout("broken", "not a function")
