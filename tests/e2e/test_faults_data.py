"""Faults of the data: evaluation with unreadable videos (never a stand-in's score, reported,
excluded or fatal by TEST.BAD_VIDEO_POLICY), too many bad videos, duplicate class names and a
class count that does not match MODEL.NUM_CLASSES."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import datasets
from datasets.annotations import AnnotationError, read_class_names, read_kinetics_csv, \
    read_ucf101
from engine.build import build_model, build_model_without_init
from engine.config import ConfigError, load_cfg
from engine.evaluation import _per_class
from tests.helpers.faults import REPO, make_synthetic, one_error_line, run_main, write_tiny_config
from tools import prepare_dataset
from tools import test as test_tool
from tools import train
from tools.workflows.analysis import load_run
from tools.workflows.zero_shot import format_table, summarize


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(root, config, checkpoint): the tiny model's weights (untrained: evaluation only needs a
    checkpoint that fits) and the synthetic videos, read through list files."""
    root = tmp_path_factory.mktemp("faults_data")
    syn = make_synthetic(root)
    (root / "broken.mp4").write_text("not a video at all\n")
    cfg = write_tiny_config(root)
    model = build_model_without_init(load_cfg(str(cfg)))
    torch.save({"model": model.state_dict()}, root / "weights.pth")
    return root, cfg, root / "weights.pth", syn


def _list(root, name, lines):
    path = root / name
    path.write_text("".join(f"{video},{label}\n" for video, label in lines))
    return path


def _csv_opts(syn, val_file, labels=None):
    return ["DATA.DATASET", "csv", "DATA.ROOT", syn, "DATA.TRAIN_FILE", syn / "train.csv",
            "DATA.VAL_FILE", val_file, "DATA.LABEL_LIST", labels or syn / "classes.txt"]


def _good(syn):
    return [line.split(",") for line in (syn / "val.csv").read_text().split()]


def test_an_unreadable_video_is_excluded_and_reported(setup, tmp_path, capsys):
    root, cfg, weights, syn = setup
    good = _good(syn)
    only_good = _list(tmp_path, "good.csv", good)
    with_bad = _list(tmp_path, "with_bad.csv", good[:2] + [(str(root / "broken.mp4"), 3)]
                     + good[2:])
    code, _, _ = run_main(test_tool.main, ["--cfg", cfg, "--checkpoint", weights, "--output",
                                           tmp_path / "ref", "--opts", *_csv_opts(syn, only_good)],
                          capsys)
    assert code == 0
    reference = json.loads((tmp_path / "ref" / "eval_results.json").read_text())
    code, out, err = run_main(test_tool.main, ["--cfg", cfg, "--checkpoint", weights, "--output",
                                               tmp_path / "out", "--opts",
                                               *_csv_opts(syn, with_bad)], capsys)
    assert code == 0, err
    assert "1 of 5 videos could not be decoded and are left out of these metrics" in out
    result = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert result["bad_videos"] == 1 and result["bad_video_policy"] == "exclude"
    assert result["bad_video_paths"] == [str(root / "broken.mp4")]
    assert result["num_videos"] == 4 and result["num_listed"] == 5
    for key in ("top1", "top5", "mean_class_acc", "per_class_acc"):
        assert result[key] == reference[key]
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows][2] == str(root / "broken.mp4")
    assert rows[2]["label"] == "3" and rows[2]["pred1"] == "" and rows[2]["correct"] == ""
    assert [r["label"] for r in rows] == [str(label) for _, label in
                                          good[:2] + [("", 3)] + good[2:]]
    scores = np.load(tmp_path / "out" / "scores.npy")
    assert np.isnan(scores[2]).all() and not np.isnan(np.delete(scores, 2, axis=0)).any()
    # the analysis tools leave it out too, as the metrics did
    run = load_run(str(tmp_path / "out"))
    assert run.unreadable == [str(root / "broken.mp4")] and len(run.labels) == 4
    # the same four videos in other batches: equal to float32 rounding
    assert np.allclose(run.scores, load_run(str(tmp_path / "ref")).scores, rtol=0, atol=1e-6)


def test_zero_shot_tables_count_unreadable_videos():
    rows = [{"split": "split1", "num_classes": 5, "num_videos": 8, "num_listed": 10,
             "bad_videos": 1, "top1": 50.0, "top5": 90.0},
            {"split": "split2", "num_classes": 5, "num_videos": 10, "num_listed": 10,
             "top1": 60.0, "top5": 100.0}]
    summary = summarize(rows)
    assert [(r["bad_videos"], r["num_missing"]) for r in summary["splits"]] == [(1, 1), (0, 0)]
    table = format_table(summary).splitlines()
    assert "unreadable" in table[0] and table[1].split()[:5] == ["split1", "5", "8", "1", "1"]
    del rows[0]["bad_videos"]
    assert "unreadable" not in format_table(summarize(rows))


def test_bad_video_policy_fail_stops_with_one_line(setup, tmp_path, capsys):
    root, cfg, weights, syn = setup
    with_bad = _list(tmp_path, "with_bad.csv", _good(syn)[:2] + [(str(root / "broken.mp4"), 3)])
    code, _, err = run_main(test_tool.main, [
        "--cfg", cfg, "--checkpoint", weights, "--output", tmp_path / "out", "--opts",
        *_csv_opts(syn, with_bad), "TEST.BAD_VIDEO_POLICY", "fail"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"error: {root / 'broken.mp4'}: ") and "TEST.BAD_VIDEO_POLICY fail" in line
    assert not (tmp_path / "out" / "eval_results.json").exists()


def test_too_many_bad_videos_in_a_worker_is_one_line(setup, tmp_path, capsys):
    root, cfg, weights, syn = setup
    broken = [(str(root / "broken.mp4"), 1)] + [(str(root / f"gone{i}.mp4"), 2) for i in range(2)]
    listing = _list(tmp_path, "mostly_bad.csv", _good(syn)[:1] + broken)
    code, _, err = run_main(test_tool.main, [
        "--cfg", cfg, "--checkpoint", weights, "--output", tmp_path / "out", "--opts",
        *_csv_opts(syn, listing), "DATA.NUM_WORKERS", "1", "TEST.BATCH_SIZE", "1"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("error: 3 of 4 videos failed to decode, more than "
                           "DATA.MAX_BAD_FRACTION=0.5 of the dataset")
    assert "Caught" not in line and "Original Traceback" not in line


# ---------------------------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------------------------
def test_duplicate_class_names_are_refused_everywhere(setup, tmp_path, capsys):
    root, cfg, weights, syn = setup
    names = (syn / "classes.txt").read_text().splitlines()
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join([names[0], names[1], names[0]] + names[3:]) + "\n")
    expected = f"{dup}: lines 1 and 3 both name class 'moving left'"
    for main, extra in ((train.main, ["--output", tmp_path / "run"]),
                        (test_tool.main, ["--checkpoint", weights, "--output", tmp_path / "t"])):
        code, _, err = run_main(main, ["--cfg", cfg, *extra, "--opts",
                                       *_csv_opts(syn, syn / "val.csv", dup)], capsys)
        assert code == 2 and expected in one_error_line(err)
    code, _, err = run_main(prepare_dataset.main, ["--validate", syn / "val.csv", "--root", syn,
                                                   "--label-list", dup, "--no-decode"], capsys)
    assert code == 2 and expected in one_error_line(err)
    as_csv = tmp_path / "dup.csv"
    as_csv.write_text("id,name\n0,a\n1,b\n2,a\n")
    with pytest.raises(AnnotationError, match="lines 2 and 4 both name class 'a'"):
        read_class_names(str(as_csv))


def test_duplicate_class_names_from_other_sources(tmp_path):
    # Kinetics CSV labels are matched ignoring case and punctuation: such twins are ambiguous
    listing = tmp_path / "k.csv"
    listing.write_text("label,youtube_id,time_start,time_end,split\nmoving left,x,0,10,train\n")
    with pytest.raises(AnnotationError, match="cannot be told apart"):
        read_kinetics_csv(str(listing), str(tmp_path), ["Moving left", "moving-left"])
    # UCF101's classInd.txt
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Archery\n2 Archery\n")
    with pytest.raises(AnnotationError, match="classes 0 and 1 are both named 'Archery'"):
        read_ucf101(str(tmp_path), 1, "train")
    # a registered layout: its bundled list, and what its reader returns
    with pytest.raises(AnnotationError, match="default_classes: classes 0 and 1"):
        datasets.register_layout("twins", lambda cfg, split: ([], None), ["a", "a"])
    datasets.register_layout("twins", lambda cfg, split: ([("v.mp4", 0)], ["a", "b", "a"]))
    try:
        cfg = load_cfg(None, ["DATA.DATASET", "twins"])
        with pytest.raises(AnnotationError, match=r"DATA.DATASET twins \(train\): classes 0 and 2"):
            datasets.load_annotations(cfg, "train")
    finally:
        datasets.layouts.LAYOUTS.pop("twins", None)
    # results keep one entry per class, whatever the names
    assert _per_class(["a", "b", "a"], [1.0, 2.0, 3.0]) == {"a (0)": 1.0, "b": 2.0, "a (2)": 3.0}


@pytest.mark.parametrize("family", ["video_focalnet", "vita_clip"])
def test_num_classes_must_match_the_class_list(tmp_path, family):
    names = tmp_path / "names.txt"
    names.write_text("archery\nbowling\njuggling\n")
    if family == "video_focalnet":
        cfg = load_cfg(None, ["MODEL.NUM_CLASSES", 12, "DATA.LABEL_LIST", str(names),
                              "DATA.IMG_SIZE", 32, "MODEL.FOCAL.DEPTHS", [1, 1],
                              "MODEL.TYPE", "videofocalnet_custom",
                              "MODEL.FOCAL.FOCAL_LEVELS", [1, 1],
                              "MODEL.FOCAL.FOCAL_WINDOWS", [3, 3]])
    else:
        cfg = load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"),
                       ["MODEL.NUM_CLASSES", 12, "DATA.LABEL_LIST", str(names)])
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert str(err.value) == (f"key MODEL.NUM_CLASSES: 12, but DATA.LABEL_LIST {names} has 3 "
                              f"names; set MODEL.NUM_CLASSES 3 (or fix the class list)")
