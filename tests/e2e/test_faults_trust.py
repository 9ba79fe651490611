"""Numbers a user can trust (issue 26): a non-finite model output is an error everywhere, no tool
writes over its inputs, resumed features are keyed on content, the checkpoint's class list is
the model's, and malformed run files are one line naming the file.

Everything runs in-process on a tiny Video-FocalNet whose checkpoints the tests write (random
weights, or NaN weights: a diverged run) and the 4 validation videos of a small synthetic set.
"""
from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.build import build_model_without_init, config_class_names
from engine.config import load_cfg
from tests.helpers.faults import make_synthetic, one_error_line, run_main, snapshot, \
    write_tiny_config
from tools import analyze, predict, train
from tools import extract_features as features_tool
from tools import test as test_tool


class Setup:
    def __init__(self, root: Path):
        self.root = root
        self.syn = make_synthetic(root)
        self.cfg = write_tiny_config(root)
        cfg = load_cfg(str(self.cfg))
        torch.manual_seed(0)
        model = build_model_without_init(cfg)
        self.classes = config_class_names(cfg)
        self.good = root / "good.pth"
        torch.save({"model": model.state_dict(), "config": cfg.dump(),
                    "class_names": self.classes}, self.good)
        broken = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                  for k, v in model.state_dict().items()}
        self.nan = root / "diverged.pth"
        torch.save({"model": broken, "config": cfg.dump(), "class_names": self.classes},
                   self.nan)
        self.videos = sorted((self.syn / "videos" / "val").glob("*.mp4"))
        self.run = root / "eval_good"  # a finished evaluation: scores.npy, predictions.csv
        assert test_tool.main(["--cfg", str(self.cfg), "--checkpoint", str(self.good),
                               "--output", str(self.run)]) == 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return Setup(tmp_path_factory.mktemp("trust"))


def _last_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    assert lines[-1].startswith("error: "), err
    return lines[-1]


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("scores.npy", "predictions.csv", "eval_results.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


# ---------------------------------------------------------------------------------------------
# Non-finite outputs
# ---------------------------------------------------------------------------------------------
def test_evaluation_of_a_diverged_checkpoint_is_an_error(setup, tmp_path, capsys):
    out = tmp_path / "eval"
    code, _, err = run_main(test_tool.main, ["--cfg", setup.cfg, "--checkpoint", setup.nan,
                                             "--output", out], capsys)
    line = one_error_line(err)
    assert code == 3 and "4 of 4 videos got non-finite probabilities (NaN/inf)" in line
    assert not (out / "eval_results.json").exists() and not (out / "scores.npy").exists()


def test_predict_never_writes_nan(setup, tmp_path, capsys):
    out = tmp_path / "p.json"
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.nan,
                                           *setup.videos, "--json", out], capsys)
    assert code == 3
    assert _last_error(err).startswith("error: 4 of 4 videos (4 of 4 window(s) of those) got "
                                       "non-finite probabilities")

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")
    records = json.loads(out.read_text(), parse_constant=refuse)  # strict JSON
    assert [r["video"] for r in records] == [str(v) for v in setup.videos]
    assert all("error" in r and "topk" not in r for r in records)


def test_features_of_a_diverged_checkpoint_are_not_written(setup, tmp_path, capsys):
    out = tmp_path / "feats"
    code, _, err = run_main(features_tool.main, ["--cfg", setup.cfg, "--checkpoint", setup.nan,
                                                 "--input", setup.syn / "val.csv", "--out", out],
                            capsys)
    assert code == 3 and "4 of 4 videos (4 of 4 window(s) of those) got non-finite features" \
        in _last_error(err)
    assert not (out / "features.npy").exists() and not list((out / "parts").glob("*.npz"))


def test_analyze_refuses_nan_scores_of_decoded_videos_and_nan_weights(setup, tmp_path, capsys):
    run = _copy_run(setup.run, tmp_path / "nan_run")
    scores = np.load(run / "scores.npy")
    scores[1] = np.nan
    np.save(run / "scores.npy", scores)
    code, _, err = run_main(analyze.main, ["confusion", "--scores", run], capsys)
    assert code == 3 and "1 of 4 videos got non-finite scores" in one_error_line(err)
    assert not (run / "analysis").exists()
    for weight in ("nan", "inf"):
        code, out, err = run_main(analyze.main, ["fuse", setup.run, setup.run, "--weights",
                                                 weight, "1"], capsys)
        assert code == 2 and "give finite numbers" in one_error_line(err) and out == ""


# ---------------------------------------------------------------------------------------------
# Inputs are never overwritten
# ---------------------------------------------------------------------------------------------
def test_predict_refuses_to_write_over_its_inputs(setup, tmp_path, capsys):
    video = tmp_path / "x.mp4"
    video.write_bytes(setup.videos[0].read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video}\n")
    before = snapshot(tmp_path)
    for argv in ([video, "--window", 1, "--out-video", video],
                 [video, "--json", video],
                 [listing, "--json", listing],
                 [listing, "--json", tmp_path / "." / "x.mp4"]):  # another spelling
        code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                               *argv], capsys)
        assert code == 2 and "which this command reads" in one_error_line(err)
    assert snapshot(tmp_path) == before


def test_fuse_refuses_to_replace_a_source_run(setup, tmp_path, capsys):
    a = _copy_run(setup.run, tmp_path / "a")
    before = snapshot(a)
    code, out, err = run_main(analyze.main, ["fuse", a, setup.run, "--out", tmp_path / "a/"],
                              capsys)
    assert code == 2 and "--out" in one_error_line(err) and "which this command reads" in err
    assert out == "" and snapshot(a) == before
    (tmp_path / "file").write_text("x")
    for argv in (["fuse", a, setup.run], ["compare", a, setup.run]):
        code, out, err = run_main(analyze.main, [*argv, "--out", tmp_path / "file"], capsys)
        assert code == 2 and "is an existing file" in one_error_line(err) and out == ""


def test_training_into_an_evaluation_folder_is_refused(setup, tmp_path, capsys):
    run = tmp_path / "evaluation"
    run.mkdir()
    for name in ("eval_results.json", "config.yaml", "scores.npy", "predictions.csv"):
        (run / name).write_bytes((setup.run / name).read_bytes())
    before = snapshot(run)
    code, _, err = run_main(train.main, ["--cfg", setup.cfg, "--opts", "OUTPUT", run,
                                         "TRAIN.BASE_LR", 0.5], capsys)
    assert code == 2 and "holds an evaluation (eval_results.json)" in one_error_line(err)
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# Features resume on content
# ---------------------------------------------------------------------------------------------
def test_feature_resume_is_keyed_on_content_and_normalised_paths(setup, tmp_path, capsys,
                                                                 monkeypatch):
    checkpoint = tmp_path / "latest.pth"
    checkpoint.write_bytes(setup.good.read_bytes())
    out = tmp_path / "feats"
    argv = ["--cfg", setup.cfg, "--checkpoint", checkpoint, "--input", setup.syn / "val.csv"]
    code, printed, _ = run_main(features_tool.main, [*argv, "--out", out], capsys)
    assert code == 0 and "4 videos, 0 done earlier" in printed
    first = np.load(out / "features.npy")
    # the same run spelled with a trailing slash, or relative: resumed, nothing recomputed
    code, printed, _ = run_main(features_tool.main, [*argv, "--out", f"{out}/"], capsys)
    assert code == 0 and "4 videos, 4 done earlier" in printed
    monkeypatch.chdir(tmp_path)
    code, printed, _ = run_main(features_tool.main, [*argv, "--out", "feats"], capsys)
    assert code == 0 and "4 videos, 4 done earlier" in printed
    # a video rewritten since: only it is computed again
    video = Path(setup.videos[2])
    stamp = video.stat()
    os.utime(video, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    try:
        code, printed, _ = run_main(features_tool.main, [*argv, "--out", out], capsys)
    finally:
        os.utime(video, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert code == 0 and "4 videos, 3 done earlier" in printed
    np.testing.assert_array_equal(np.load(out / "features.npy"), first)
    # the checkpoint replaced under the same path (more training): refused, not stale features
    state = torch.load(setup.good, weights_only=True)
    state["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, checkpoint)
    code, _, err = run_main(features_tool.main, [*argv, "--out", out], capsys)
    assert code == 2 and "holds features made with other settings (checkpoint differ)" \
        in one_error_line(err)


def test_a_failed_feature_run_does_not_block_the_corrected_one(setup, tmp_path, capsys):
    wrong = tmp_path / "wrong.pth"
    wrong.write_text("not a checkpoint")
    out = tmp_path / "feats"
    argv = ["--cfg", setup.cfg, "--input", setup.syn / "val.csv", "--out", out]
    code, _, err = run_main(features_tool.main, [*argv, "--checkpoint", wrong], capsys)
    assert code == 2 and "not a checkpoint" in _last_error(err)
    assert not (out / "manifest.json").exists()
    code, printed, _ = run_main(features_tool.main, [*argv, "--checkpoint", setup.good], capsys)
    assert code == 0 and "4 videos, 0 done earlier" in printed
    for value in ("nan", "inf"):  # before anything is written
        code, _, err = run_main(features_tool.main, ["--cfg", setup.cfg, "--checkpoint",
                                                     setup.good, "--input", setup.videos[0],
                                                     "--out", tmp_path / value, "--window",
                                                     value], capsys)
        assert code == 2 and "give a positive, finite number of seconds" in one_error_line(err)
        assert not (tmp_path / value).exists()


# ---------------------------------------------------------------------------------------------
# The checkpoint's class list; --labels
# ---------------------------------------------------------------------------------------------
def test_a_class_list_in_another_order_is_refused_unless_overridden(setup, tmp_path, capsys):
    reversed_list = tmp_path / "reversed.txt"
    reversed_list.write_text("\n".join(reversed(setup.classes)) + "\n")
    renamed = tmp_path / "renamed.txt"
    renamed.write_text("\n".join(["other"] + setup.classes[1:]) + "\n")
    base = ["--cfg", setup.cfg, "--checkpoint", setup.good, setup.videos[0]]
    for listing, words in ((reversed_list, "the same names in another order"),
                           (renamed, "other names (e.g. 'other' is in only one of them)")):
        code, _, err = run_main(predict.main, [*base, "--opts", "DATA.LABEL_LIST", listing],
                                capsys)
        assert code == 2 and words in _last_error(err), err
        code, _, err = run_main(test_tool.main, ["--cfg", setup.cfg, "--checkpoint",
                                                 setup.good, "--output", tmp_path / "t",
                                                 "--opts", "DATA.LABEL_LIST", listing], capsys)
        assert code == 2 and words in _last_error(err)
    code, printed, _ = run_main(predict.main, [*base, "--opts", "DATA.LABEL_LIST",
                                               reversed_list, "TEST.OVERRIDE_CHECKPOINT_CLASSES",
                                               True], capsys)
    assert code == 0 and "1 of 1 videos predicted" in printed


@pytest.mark.parametrize("labels, words", [
    ("", "--labels is empty"),
    ("mylabels.txt", "--labels mylabels.txt: no such class file"),
    ("labels/names", "no such class file"),
])
def test_labels_that_look_like_a_path_must_exist(setup, labels, words, capsys):
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                           setup.videos[0], "--labels", labels], capsys)
    assert code == 2 and words in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# analyze: alignment, empty runs, malformed files
# ---------------------------------------------------------------------------------------------
def _rows(run: Path) -> tuple[list[str], list[list[str]]]:
    with open(run / "predictions.csv", newline="") as f:
        table = list(csv.reader(f))
    return table[0], table[1:]


def _write_rows(run: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(run / "predictions.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


def _handmade_run(folder: Path) -> Path:
    """4 videos of labels 0..3; the first two predicted right (top-1 50.00), in index order."""
    folder.mkdir()
    scores = np.full((4, 10), 0.01, np.float32)
    for row, predicted in enumerate([0, 1, 5, 6]):
        scores[row, predicted] = 0.91
    np.save(folder / "scores.npy", scores)
    header = ["index", "path", "label", "correct", "pred1", "score1"]
    _write_rows(folder, header, [[i, f"v{i}.mp4", i, int(p == i), p, "0.91"]
                                 for i, p in enumerate([0, 1, 5, 6])])
    return folder


def test_analyze_aligns_reordered_rows_or_refuses_them(tmp_path, capsys):
    def top1(run):
        code, printed, err = run_main(analyze.main, ["confusion", "--scores", run, "--out",
                                                     run / "analysis"], capsys)
        assert code == 0, err
        return [line for line in printed.splitlines() if "top-1" in line][0].split("top-1")[1]
    run = _handmade_run(tmp_path / "run")
    assert top1(run).split()[0] == "50.00"
    # the CSV re-sorted (here: reversed); paired row by row it would score 0.00
    header, rows = _rows(run)
    _write_rows(run, header, rows[::-1])
    assert top1(run).split()[0] == "50.00"
    # rows that no order of the index column puts back in place: refused
    _write_rows(run, header, [r[:4] + [str((int(r[4]) + 1) % 10)] + r[5:] for r in rows])
    code, _, err = run_main(analyze.main, ["confusion", "--scores", run], capsys)
    assert code == 2 and "its rows are not in the order of scores.npy" in one_error_line(err)


def test_analyze_with_no_decodable_video_is_an_error(setup, tmp_path, capsys):
    run = _copy_run(setup.run, tmp_path / "none")
    header, rows = _rows(run)
    _write_rows(run, header, [r[:3] + [""] * (len(r) - 3) for r in rows])
    np.save(run / "scores.npy", np.full(np.load(run / "scores.npy").shape, np.nan, np.float32))
    code, out, err = run_main(analyze.main, ["confusion", "--scores", run], capsys)
    assert code == 2 and "none of its 4 videos could be decoded" in one_error_line(err)
    assert "nan" not in out


@pytest.mark.parametrize("damage, words", [
    ("label=12", "predictions.csv line 2: label '12' is not a class index in [0, 9]"),
    ("label=-1", "line 2: label '-1' is not a class index"),
    ("drop=label", "predictions.csv: column label missing"),
    ("scores=wide", "scores.npy has 11 columns but"),
    ("scores=narrow", "scores.npy has 3 columns but"),
    ("scores=empty", "scores.npy: expected probabilities of shape (videos, classes)"),
    ("scores=text", "scores.npy: not a readable .npy array"),
    ("results=broken", "eval_results.json: not readable JSON"),
    ("csv=binary", "predictions.csv: not a readable CSV"),
])
def test_malformed_run_files_are_one_line_naming_the_file(setup, tmp_path, capsys, damage,
                                                          words):
    run = _copy_run(setup.run, tmp_path / "run")
    header, rows = _rows(run)
    what, value = damage.split("=")
    if what == "label":
        rows[0][header.index("label")] = value
        _write_rows(run, header, rows)
    elif what == "drop":
        keep = [i for i, h in enumerate(header) if h != value]
        _write_rows(run, [header[i] for i in keep], [[r[i] for i in keep] for r in rows])
    elif damage in ("scores=wide", "scores=narrow"):
        np.save(run / "scores.npy", np.full((4, 11 if value == "wide" else 3), 0.1, np.float32))
    elif damage == "scores=empty":
        np.save(run / "scores.npy", np.zeros((0, 10), np.float32))
    elif damage == "scores=text":
        (run / "scores.npy").write_text("not numpy")
    elif what == "results":
        (run / "eval_results.json").write_text("{broken")
    else:
        (run / "predictions.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    code, _, err = run_main(analyze.main, ["confusion", "--scores", run], capsys)
    line = one_error_line(err)
    assert code == 2 and words in line and str(run) in line


def test_analyze_names_a_file_given_for_a_run_folder(setup, capsys):
    code, _, err = run_main(analyze.main, ["confusion", "--scores",
                                           setup.run / "scores.npy"], capsys)
    assert code == 2 and "is a file, not a run folder" in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# Tracebacks turned into one line; special files; truthful refusals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--window", "--stride"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_predict_refuses_non_finite_seconds(setup, capsys, flag, value):
    extra = ["--window", "1"] if flag == "--stride" else []
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                           setup.videos[0], *extra, flag, value], capsys)
    assert code == 2 and f"{flag} {float(value)}: give a positive, finite number" \
        in one_error_line(err)


def test_a_binary_list_file_is_one_line(setup, tmp_path, capsys):
    listing = tmp_path / "videos.txt"
    listing.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8\xff" + bytes(range(256)))
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                           listing], capsys)
    assert code == 2 and f"{listing}: not a text file" in one_error_line(err)


def test_special_files_are_skipped_and_symlink_loops_followed_once(setup, tmp_path, capsys,
                                                                   caplog):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    for i, video in enumerate(setup.videos[:2]):
        (folder / "sub" / f"{i}.mp4").write_bytes(video.read_bytes())
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "again").symlink_to(folder / "sub", target_is_directory=True)
    os.mkfifo(folder / "sub" / "v.mp4")
    out = tmp_path / "p.json"
    code, printed, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                                 folder, "--json", out], capsys)
    assert code == 0 and "2 of 2 videos predicted" in printed
    assert "v.mp4: not a regular file" in caplog.text
    assert len(json.loads(out.read_text())) == 2


def test_cache_folders_that_are_files_are_one_line(tmp_path, monkeypatch, capsys):
    from tools import download_weights
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("VIDEO_WEIGHTS_DIR", str(blocker))
    monkeypatch.setenv("VIDEO_WEIGHTS_OFFLINE", "1")
    code, _, err = run_main(download_weights.main, ["focalnet_tiny_srf", "--quiet"], capsys)
    assert code == 2 and f"VIDEO_WEIGHTS_DIR {blocker} is a file" in one_error_line(err)

    from engine.text_classifier import zero_shot_classifier

    class Texts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))

        def encode_text(self, names):
            return torch.ones(len(names), 3)
    with pytest.raises(NotADirectoryError, match="text cache folder .* is a file"):
        zero_shot_classifier(Texts(), ["a", "b"], str(blocker))


def test_refusals_say_what_is_wrong(setup, tmp_path, capsys, monkeypatch):
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.root,
                                           setup.videos[0]], capsys)
    assert code == 2 and f"--checkpoint {setup.root} is a directory" in one_error_line(err)
    code, _, err = run_main(test_tool.main, ["--cfg", setup.cfg, "--checkpoint", setup.root],
                            capsys)
    assert code == 2 and f"--checkpoint {setup.root} is a directory" in one_error_line(err)
    from tools import visualize
    code, _, err = run_main(visualize.main, [setup.syn, "--cfg", setup.cfg, "--checkpoint",
                                             setup.good, "--out", tmp_path / "v"], capsys)
    assert code == 2 and f"VIDEO {setup.syn} is a folder" in one_error_line(err)
    # a full disk while writing --json says so
    import common.fileio

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", path)
    monkeypatch.setattr(common.fileio, "atomic_write_text", full)
    code, _, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                           setup.videos[0], "--json", tmp_path / "p.json"],
                            capsys)
    line = _last_error(err)
    assert code == 2 and "no space left on device while writing --json" in line
    assert "OUTPUT" not in line


def test_a_failed_evaluation_leaves_no_empty_folder(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIDEO_EVAL_DIR", str(tmp_path / "evals"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"x": torch.zeros(1)}}, wrong)
    out = tmp_path / "deep" / "eval"
    code, _, err = run_main(test_tool.main, ["--cfg", setup.cfg, "--checkpoint", wrong,
                                             "--output", out], capsys)
    assert code == 2 and not (tmp_path / "deep").exists()
    # no --output and a config that names OUTPUT: the config's; a zoo-less default otherwise
    assert test_tool.default_output(str(wrong)) == str(tmp_path / "evals" / f"{tmp_path.name}-"
                                                                              "wrong")


def test_evaluate_refuses_non_finite_scores_for_every_caller():
    """engine.evaluation.evaluate serves tools/test.py, validation, zero-shot and the protocols:
    a model giving NaN for some videos is an error there, not a metric."""
    from engine.evaluation import evaluate
    from engine.guards import NonFiniteOutputError

    class HalfBroken(torch.nn.Module):
        def forward(self, clips):
            logits = clips.flatten(1)[:, :5].float()
            logits[clips[:, 0, 0, 0, 0] > 0] = float("nan")
            return logits

    views = torch.zeros(4, 1, 2, 3, 4, 4)
    views[1, :, :, :, :, :] = 1.0  # video 1 gives NaN
    batches = [(views[:2], torch.tensor([0, 1]), torch.tensor([0, 1])),
               (views[2:], torch.tensor([2, 3]), torch.tensor([2, 3]))]
    with pytest.raises(NonFiniteOutputError, match=r"^1 of 4 videos got non-finite "
                                                  r"probabilities \(NaN/inf\) in evaluation"):
        evaluate(HalfBroken(), batches, torch.device("cpu"), show_progress=False)
    views[1] = 0.0
    result = evaluate(HalfBroken(), batches, torch.device("cpu"), show_progress=False)
    assert result["metrics"]["num_samples"] == 4


def test_inference_tools_never_resolve_init_weights(setup, tmp_path, capsys, monkeypatch):
    """predict and extract_features with a config whose TRAIN.PRETRAINED_PATH is a zoo name
    that is not cached, offline: the checkpoint holds every weight, so nothing is looked up."""
    monkeypatch.setenv("VIDEO_WEIGHTS_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("VIDEO_WEIGHTS_OFFLINE", "1")
    opts = ["--opts", "TRAIN.PRETRAINED_PATH", "focalnet_tiny_srf"]
    code, printed, err = run_main(predict.main, ["--cfg", setup.cfg, "--checkpoint", setup.good,
                                                 setup.videos[0], *opts], capsys)
    assert code == 0 and "1 of 1 videos predicted" in printed, err
    code, printed, err = run_main(features_tool.main, ["--cfg", setup.cfg, "--checkpoint",
                                                       setup.good, "--input", setup.videos[0],
                                                       "--out", tmp_path / "f", *opts], capsys)
    assert code == 0 and (tmp_path / "f" / "features.npy").is_file(), err
    assert not (tmp_path / "empty_cache").exists()
