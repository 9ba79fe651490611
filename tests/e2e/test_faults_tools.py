"""Faults at the entry points: annotation errors, bad tool options, videos that only decoding
finds, and the one error path itself (one line, exit 2, --debug for the traceback)."""
from __future__ import annotations

import errno

import av
import numpy as np
import pytest
import torch

from engine.build import build_model_without_init
from engine.config import load_cfg

from tests.helpers.faults import make_synthetic, one_error_line, run_main, snapshot, \
    write_tiny_config
from tools import flops, make_synthetic as make_synthetic_tool, prepare_dataset
from tools import test as test_tool
from tools import train
from tools._cli import one_line


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_tools")
    return root, make_synthetic(root)


# ---------------------------------------------------------------------------------------------
# Annotation errors through train.py and test.py
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, words", [
    ("videos/train/000000.mp4,1\nbroken line without label\n", "line 2: label 'label' is not an "
                                                               "integer"),
    ("videos/train/000000.mp4,11\n", "line 1: label 11 outside [0, 9]"),
    ("\n\n", "no samples"),
    (None, "annotation file not found"),
])
def test_annotation_errors_are_one_line(syn, tmp_path, capsys, content, words):
    root, syn_dir = syn
    listing = tmp_path / "list.csv"
    if content is not None:
        listing.write_text(content)
    cfg = write_tiny_config(tmp_path)
    opts = ["DATA.DATASET", "csv", "DATA.ROOT", syn_dir, "DATA.LABEL_LIST",
            syn_dir / "classes.txt", "DATA.TRAIN_FILE", listing, "DATA.VAL_FILE", listing]
    weights = tmp_path / "w.pth"
    torch.save({"model": build_model_without_init(load_cfg(str(cfg))).state_dict()}, weights)
    for main, extra in ((train.main, []), (test_tool.main, ["--checkpoint", weights])):
        code, _, err = run_main(main, ["--cfg", cfg, *extra, "--opts", *opts], capsys)
        assert code == 2 and words in one_error_line(err) and str(listing) in err
    assert not list((tmp_path / "run").glob("*.pth"))


def test_debug_shows_the_traceback(syn, tmp_path, capsys, monkeypatch):
    cfg = write_tiny_config(tmp_path)
    argv = ["--cfg", cfg, "--opts", "DATA.DATASET", "csv", "DATA.TRAIN_FILE", tmp_path / "no.csv"]
    code, _, err = run_main(train.main, ["--debug", *argv], capsys)
    assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")
    monkeypatch.setenv("VIDEO_DEBUG", "1")
    code, _, err = run_main(train.main, argv, capsys)
    assert code == 2 and "Traceback" in err


def test_one_line_of_a_worker_failure_and_a_full_disk():
    wrapped = RuntimeError("Caught VideoDecodeError in DataLoader worker process 0.\nOriginal "
                           "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
                           "    raise X\ndatasets.decoding.VideoDecodeError: 3 of 4 videos "
                           "failed to decode\n")
    assert one_line(wrapped) == "3 of 4 videos failed to decode"
    full = OSError(errno.ENOSPC, "No space left on device", "/out/metrics.jsonl")
    assert one_line(full) == ("no space left on device while writing /out/metrics.jsonl; free "
                              "space or choose another OUTPUT")


# ---------------------------------------------------------------------------------------------
# Tools with bad options
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--num-train", "-5"], "error: --num-train: synthetic num_train must be a whole number >= 1, "
                            "got -5"),
    (["--num-frames", "0"], "error: --num-frames: synthetic num_frames must be a whole number >= "
                            "1, got 0"),
    (["--size", "0"], "error: --size: synthetic size must be a whole number >= 8, got 0"),
    (["--size", "33"], "error: --size: synthetic size must be even for yuv420p, got 33"),
    (["--workers", "0"], "error: --workers: give at least 1 process, got 0"),
])
def test_make_synthetic_checks_its_numbers(tmp_path, capsys, args, words):
    out = tmp_path / "syn"
    code, _, err = run_main(make_synthetic_tool.main, ["--out", out, *args], capsys)
    assert code == 2 and one_error_line(err) == words
    assert not out.exists()


def test_make_synthetic_refuses_to_overwrite(syn, capsys):
    root, syn_dir = syn
    before = snapshot(syn_dir)
    code, _, err = run_main(make_synthetic_tool.main, ["--out", syn_dir], capsys)
    assert code == 2 and "already holds a synthetic set" in one_error_line(err)
    assert snapshot(syn_dir) == before


def test_flops_lists_the_known_models_for_an_unknown_one(capsys):
    code, out, err = run_main(flops.main, ["--models", "video_focalnet_tiniest"], capsys)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith("error: --models: unknown model 'video_focalnet_tiniest'; known: ")
    assert "video_focalnet_tiny" in line and "vita_clip_b16" in line


# ---------------------------------------------------------------------------------------------
# prepare_dataset --validate --decode
# ---------------------------------------------------------------------------------------------
def _audio_only(path):
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=16000)
    stream.layout = "mono"
    for i in range(8):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 16000, i * 1024
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_validate_decodes_every_video(syn, tmp_path, capsys, workers):
    root, syn_dir = syn
    good = (syn_dir / "videos" / "val" / "000000.mp4").read_bytes()
    (tmp_path / "good.mp4").write_bytes(good)
    (tmp_path / "text.mp4").write_text("a text file renamed .mp4\n")
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])
    _audio_only(tmp_path / "audio.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("good.mp4,0\ntext.mp4,1\ntruncated.mp4,2\naudio.mp4,3\n")
    argv = ["--validate", listing, "--root", tmp_path, "--workers", workers]
    code, out, _ = run_main(prepare_dataset.main, argv, capsys)
    assert code == 1 and f"{listing}: 4 entries, 3 problem(s)" in out
    for name in ("text", "truncated", "audio"):
        assert f"{tmp_path / name}.mp4: cannot be decoded with decord" in out
    assert "good.mp4: " not in out
    assert "no video stream" in out
    # --no-decode keeps the old, quick check of names and sizes
    code, out, _ = run_main(prepare_dataset.main, argv + ["--no-decode"], capsys)
    assert code == 0 and "0 problem(s)" in out


def test_prepare_dataset_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = run_main(prepare_dataset.main, ["--validate", tmp_path / "none.csv"], capsys)
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'none.csv'}: annotation " \
                                                f"file not found"
    code, _, err = run_main(prepare_dataset.main, ["--root", tmp_path], capsys)
    assert code == 2 and "--validate FILE" in one_error_line(err)
