"""tools/predict.py end to end on generated videos with tiny trained checkpoints: the
probabilities are tools/test.py's, windows and their timeline and labelled video, free-text
labels for Vita-CLIP, and the errors of bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers.trained import focal, long_video, vita  # noqa: F401  (fixtures)
from tools.predict import main as predict
from tools.test import main as evaluate_tool

pytestmark = pytest.mark.slow


def _predict(capsys, *argv) -> tuple[int, str, str]:
    code = predict([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("model", ["focal", "vita"])
def test_probabilities_are_those_of_tools_test(model, request, tmp_path, capsys):
    run = request.getfixturevalue(model)
    assert evaluate_tool(["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint),
                      "--output", str(tmp_path / "test")]) == 0
    scores = np.load(tmp_path / "test" / "scores.npy")
    with open(tmp_path / "test" / "predictions.csv", newline="") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    assert scores.shape == (6, 10)
    # the split's list file as input: same videos, same order
    code, out, _ = _predict(capsys, "--cfg", run.cfg, "--checkpoint", run.checkpoint,
                            run.data / "val.csv", "--topk", 10, "--json", tmp_path / "p.json")
    assert code == 0 and "6 of 6 videos predicted" in out
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["video"] for r in records] == paths
    for row, record in zip(scores, records):
        probs = np.zeros(10, dtype=np.float32)
        for entry in record["topk"]:
            probs[entry["index"]] = entry["prob"]
        np.testing.assert_array_equal(probs, row)  # bit for bit
        assert [e["prob"] for e in record["topk"]] == sorted(row.tolist(), reverse=True)
    names = (run.data / "classes.txt").read_text().split("\n")
    assert records[0]["topk"][0]["label"] == names[records[0]["topk"][0]["index"]]
    # a folder as input: the videos at any depth, in sorted order
    nested = tmp_path / "folder" / "deeper"
    nested.mkdir(parents=True)
    for name, source in (("b.mp4", paths[1]), ("a.mp4", paths[0])):
        (nested / name).write_bytes(Path(source).read_bytes())
    (nested / "notes.txt").write_text("not a video")
    code, out, _ = _predict(capsys, "--cfg", run.cfg, "--checkpoint", run.checkpoint,
                            tmp_path / "folder", "--topk", 10, "--json", tmp_path / "f.json")
    assert code == 0 and "2 of 2 videos predicted" in out and "rank  class" in out
    found = json.loads((tmp_path / "f.json").read_text())
    assert [r["video"] for r in found] == [str(nested / "a.mp4"), str(nested / "b.mp4")]
    assert [r["topk"] for r in found] == [r["topk"] for r in records[:2]]


def test_windows_timeline_and_labelled_video(focal, tmp_path, capsys):
    video = long_video(tmp_path / "long.mp4")  # 48 frames at 25 fps
    code, out, _ = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", focal.checkpoint,
                            video, "--window", 0.64, "--stride", 0.32, "--topk", 3,
                            "--json", tmp_path / "out" / "w.json",
                            "--out-video", tmp_path / "out" / "labelled.mp4")
    assert code == 0, out
    [record] = json.loads((tmp_path / "out" / "w.json").read_text())
    windows = record["windows"]
    assert [(round(w["start"] * 25), round(w["end"] * 25)) for w in windows] == \
        [(0, 16), (8, 24), (16, 32), (24, 40), (32, 48)]
    assert all(len(w["topk"]) == 3 for w in windows)
    assert record["timeline"] == str(tmp_path / "out" / "long.timeline.png")
    assert Path(record["timeline"]).stat().st_size > 1000
    assert "5 windows" in out and "timeline:" in out
    with av.open(str(tmp_path / "out" / "labelled.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 48 and frames[0].shape[:2] == (256, 256)  # enlarged for the caption
    # one window longer than the video is the whole video: the same probabilities
    code, _, _ = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", focal.checkpoint, video,
                          "--window", 10, "--topk", 10, "--json", tmp_path / "one.json")
    code2, _, _ = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", focal.checkpoint, video,
                           "--topk", 10, "--json", tmp_path / "whole.json")
    [one] = json.loads((tmp_path / "one.json").read_text())
    [whole] = json.loads((tmp_path / "whole.json").read_text())
    assert code == code2 == 0 and len(one["windows"]) == 1
    assert one["windows"][0]["topk"] == whole["topk"] == one["topk"]


def test_windows_follow_the_stride_in_seconds(focal, tmp_path, capsys, monkeypatch):
    """A stride that is not a whole number of frames (0.5 s at 25 fps) starts every window at
    the frame nearest k x 0.5 s (it used to round the stride to 12 frames and drift 0.02 s per
    window); a relative --json puts a relative timeline path beside it."""
    video = long_video(tmp_path / "long6.mp4", labels=(1, 0, 4, 5, 2, 3))  # 96 frames, 3.84 s
    monkeypatch.chdir(tmp_path)
    code, out, _ = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", focal.checkpoint,
                            video, "--window", 1, "--stride", 0.5, "--topk", 1,
                            "--json", Path("out") / "w.json")
    assert code == 0, out
    [record] = json.loads((tmp_path / "out" / "w.json").read_text())
    starts = [w["start"] for w in record["windows"]]
    assert [round(s * 25) for s in starts] == [0, 13, 25, 38, 50, 63, 71]
    assert all(abs(s - 0.5 * k) <= 0.5 / 25 + 1e-9 for k, s in enumerate(starts[:-1]))
    assert record["windows"][-1]["end"] == pytest.approx(96 / 25)  # the last one ends the video
    assert record["timeline"] == str(Path("out") / "long6.timeline.png")
    assert f"timeline: {Path('out') / 'long6.timeline.png'}" in out
    assert (tmp_path / record["timeline"]).stat().st_size > 1000


def test_vita_predicts_any_label_set(vita, tmp_path, capsys):
    labels = ["a dog catching a frisbee", "moving left", "an object growing"]
    argv = ["--cfg", vita.cfg, "--checkpoint", vita.checkpoint, vita.val_videos[0],
            "--labels", ",".join(labels), "--text-cache-dir", tmp_path / "cache",
            "--json", tmp_path / "labels.json"]
    code, out, _ = _predict(capsys, *argv)
    assert code == 0, out
    [record] = json.loads((tmp_path / "labels.json").read_text())
    assert sorted(t["label"] for t in record["topk"]) == sorted(labels)  # topk 5 > 3 labels
    assert sum(t["prob"] for t in record["topk"]) == pytest.approx(1.0, abs=1e-5)
    assert [t["label"] for t in record["topk"]] == [labels[t["index"]] for t in record["topk"]]
    assert len(list((tmp_path / "cache").glob("text_features_*.pt"))) == 1
    # a class file works the same, and the second run reads the cache
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    argv[6] = tmp_path / "labels.txt"
    argv[-1] = tmp_path / "again.json"
    assert _predict(capsys, *argv)[0] == 0
    assert json.loads((tmp_path / "again.json").read_text()) == [record]


def _one_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_input_is_one_clear_error(focal, vita, tmp_path, capsys):
    video = focal.val_videos[0]
    base = ["--cfg", focal.cfg, "--checkpoint", focal.checkpoint]
    code, _, err = _predict(capsys, *base, tmp_path / "missing.mp4")
    assert code == 2 and "missing.mp4 does not exist" in _one_error(err)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, _, err = _predict(capsys, *base, tmp_path / "empty")
    assert code == 2 and f"{tmp_path / 'empty'} holds no videos" in _one_error(err)
    code, _, err = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", vita.checkpoint, video)
    line = _one_error(err)
    assert code == 2 and str(vita.checkpoint) in line and "holds a vita_clip model" in line
    code, _, err = _predict(capsys, *base, video, "--labels", "a,b")
    line = _one_error(err)
    assert code == 2 and "--labels" in line and "videofocalnet_custom" in line
    code, _, err = _predict(capsys, *base, video, "--stride", 1)
    assert code == 2 and "--stride needs --window" in _one_error(err)


def test_undecodable_video_is_skipped(focal, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    good = focal.val_videos[:2]
    code, out, err = _predict(capsys, "--cfg", focal.cfg, "--checkpoint", focal.checkpoint,
                              good[0], bad, good[1], "--json", tmp_path / "p.json")
    assert code == 1
    assert f"skipped {bad}" in err and "2 of 3 videos predicted" in out and str(bad) in out
    assert f"skipped {bad}: {bad}:" not in err  # the path once, then the decoders' reasons
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["video"] for r in records] == [str(good[0]), str(bad), str(good[1])]
    assert "error" in records[1] and "topk" in records[0] and "topk" in records[2]
