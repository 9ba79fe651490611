"""configs/labels: copies of the published lists and the Kinetics-600 zero-shot files."""
from __future__ import annotations

import filecmp
import re

import pytest

from datasets.annotations import read_class_names


def _norm(name: str) -> str:
    return " ".join(sorted(re.sub(r"[^a-z0-9]+", " ", name.lower()).split()))


@pytest.fixture(scope="module")
def labels(repo_root):
    return repo_root / "configs" / "labels"


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
    assert gen.main(["--check"]) == 0
