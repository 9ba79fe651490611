"""Faults of weight files: unsafe pickles (whatever the payload), text, truncated and directory
paths, weights of another model, a full disk while saving. One line, exit status 2, the file
named, torch's advice to load with weights_only=False never repeated."""
from __future__ import annotations

import builtins
import errno
import io
import os
import pickle
import subprocess
import zipfile

import pytest
import torch

from engine import checkpoint as ck
from engine.build import build_model
from engine.checkpoint import CheckpointError, UnsafeCheckpointError
from engine.config import ConfigError, load_cfg
from tests.helpers.faults import REPO, make_synthetic, one_error_line, run_main, snapshot, \
    write_tiny_config
from tests.helpers.tiny import MODELS, as_opts
from tools import test as test_tool
from tools import train

UNSAFE_WORDS = "refusing to load {path}: it can only be read by executing arbitrary pickled code"


class _Payload:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


PAYLOADS = {
    "os.system": lambda: _Payload(os.system, "true"),
    "io.open": lambda: _Payload(io.open, os.devnull),
    "builtins.eval": lambda: _Payload(builtins.eval, "1"),
    "subprocess.Popen": lambda: _Payload(subprocess.Popen, ["true"]),
}


def _unsafe_file(tmp_path, name: str, plain: bool = False):
    path = tmp_path / f"{name}.pth"
    payload = {"model": PAYLOADS[name](), "epoch": 0}
    if plain:  # a bare pickle, not torch's zip container
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:
        torch.save(payload, path)
    return str(path)


@pytest.mark.parametrize("plain", [False, True], ids=["torch.save", "plain-pickle"])
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_every_unsafe_payload_gets_the_same_refusal(tmp_path, name, plain):
    path = _unsafe_file(tmp_path, name, plain)
    with pytest.raises(UnsafeCheckpointError) as err:
        ck.safe_load(path)
    text = str(err.value)
    assert text.startswith(UNSAFE_WORDS.format(path=path))
    assert "weights_only=False" not in text and "weights_only` set to `False" not in text
    assert "add_safe_globals" not in text and "\n" not in text


@pytest.mark.parametrize("content, kind", [
    (b"hello", "text"), (b"", "empty"), (None, "truncated"), (bytes(range(256)), "binary")])
def test_unreadable_files_are_one_checkpoint_error(tmp_path, content, kind):
    path = tmp_path / f"{kind}.pth"
    if content is None:
        full = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(64, 64)}}, full)
        content = full.getvalue()[: len(full.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        ck.safe_load(str(path))
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert str(err.value) == (f"{path} is truncated, damaged or not a checkpoint (a file that "
                              f"torch.save wrote); check the path, or download or copy it again")


def test_directories_are_not_checkpoints(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        ck.safe_load(str(tmp_path))


def test_auto_resume_stops_on_an_unsafe_latest_whatever_the_payload(tmp_path):
    for name in PAYLOADS:
        run = tmp_path / name.replace(".", "_")
        run.mkdir()
        (run / "latest.pth").write_bytes(open(_unsafe_file(tmp_path, name), "rb").read())
        torch.save({"model": {}, "epoch": 0}, run / "ckpt_epoch_0.pth")
        with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
            ck.find_resume_checkpoint(str(run))
    # a merely damaged latest.pth (a kill mid-write of an older version) is skipped
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "latest.pth").write_bytes(b"PK\x03\x04 cut")
    torch.save({"model": {}, "epoch": 0}, run / "ckpt_epoch_0.pth")
    assert ck.find_resume_checkpoint(str(run))[0] == str(run / "ckpt_epoch_0.pth")


# ---------------------------------------------------------------------------------------------
# PRETRAINED_PATH (Video-FocalNet) and BACKBONE_PATH (Vita-CLIP): the same answers, naming the key
# ---------------------------------------------------------------------------------------------
FOCAL_OPTS = as_opts({**MODELS["focal"], "MODEL.NUM_CLASSES": 4, "DATA.NUM_FRAMES": 4,
                     "DATA.IMG_SIZE": 32})


def _vita_cfg(tmp_path, backbone):
    return load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"),
                    ["DATA.IMG_SIZE", 32, "DATA.NUM_FRAMES", 2, "MODEL.VITA.FEATURE_DIM", 32,
                     "MODEL.VITA.NUM_HEADS", 2, "MODEL.VITA.EMBED_DIM", 16,
                     "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", 16,
                     "MODEL.VITA.TEXT_TRANSFORMER_HEADS", 2, "MODEL.VITA.BACKBONE_PATH",
                     str(backbone), "OUTPUT", str(tmp_path / "out")])


def _build(tmp_path, key, path):
    if key == "TRAIN.PRETRAINED_PATH":
        return build_model(load_cfg(None, FOCAL_OPTS + [key, str(path)]))
    return build_model(_vita_cfg(tmp_path, path), ["a", "b", "c"])


@pytest.mark.parametrize("key", ["TRAIN.PRETRAINED_PATH", "MODEL.VITA.BACKBONE_PATH"])
def test_initialisation_files_get_the_checkpoint_answers(tmp_path, key):
    unsafe = _unsafe_file(tmp_path, "os.system")
    with pytest.raises(UnsafeCheckpointError) as err:
        _build(tmp_path, key, unsafe)
    assert str(err.value).startswith(f"key {key}: " + UNSAFE_WORDS.format(path=unsafe))
    assert "weights_only=False" not in str(err.value)
    text = tmp_path / "five.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=rf"^key {key}: {text} is truncated, damaged or not "
                                              rf"a checkpoint"):
        _build(tmp_path, key, text)
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"something.else": torch.zeros(3)}}, wrong)
    with pytest.raises(ConfigError, match=rf"^key {key}: ") as err:
        _build(tmp_path, key, wrong)
    assert "\n" not in str(err.value)


def test_pretrained_errors_reach_the_user_as_one_line(tmp_path, capsys):
    make_synthetic(tmp_path)
    cfg = write_tiny_config(tmp_path)
    text = tmp_path / "five.pth"
    text.write_text("hello")
    for path, words in ((_unsafe_file(tmp_path, "io.open"), "refusing to load"),
                        (text, "is truncated, damaged or not a checkpoint")):
        code, _, err = run_main(train.main, ["--cfg", cfg, "--pretrained", path], capsys)
        assert code == 2
        line = one_error_line(err)
        assert line.startswith(f"error: key TRAIN.PRETRAINED_PATH: ") and words in line
    assert not (tmp_path / "run" / "config.yaml").exists()


# ---------------------------------------------------------------------------------------------
# --checkpoint / --resume given a text file or a directory
# ---------------------------------------------------------------------------------------------
def test_checkpoint_and_resume_given_a_text_file_or_a_directory(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path)
    text = tmp_path / "five.pth"
    text.write_text("hello")
    out = tmp_path / "out"
    code, _, err = run_main(test_tool.main, ["--cfg", cfg, "--checkpoint", text, "--output", out],
                            capsys)
    assert code == 2 and one_error_line(err) == (
        f"error: {text} is truncated, damaged or not a checkpoint (a file that torch.save "
        f"wrote); check the path, or download or copy it again")
    code, _, err = run_main(test_tool.main, ["--cfg", cfg, "--checkpoint", tmp_path], capsys)
    assert code == 2 and one_error_line(err) == (
        f"error: --checkpoint {tmp_path} is a directory; give the path of a checkpoint file "
        f"(.pth)")
    code, _, err = run_main(train.main, ["--cfg", cfg, "--resume", tmp_path, "--output", out],
                            capsys)
    assert code == 2 and "is a directory" in one_error_line(err)
    code, _, err = run_main(train.main, ["--cfg", cfg, "--resume", text, "--output", out],
                            capsys)
    assert code == 2 and "is truncated, damaged or not a checkpoint" in one_error_line(err)
    assert not (tmp_path / "syn").exists()  # stopped before any data work
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written, no lock left


# ---------------------------------------------------------------------------------------------
# A full disk while saving
# ---------------------------------------------------------------------------------------------
def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 0}, tmp_path / "latest.pth")
    before = snapshot(tmp_path)

    def no_space(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    ckpt = {"model": {"w": torch.zeros(2)}, "epoch": 1}
    with pytest.raises(CheckpointError) as err:
        ck.save_checkpoint(ckpt, str(tmp_path), epoch=1, save_freq=1, is_best=True)
    assert str(err.value) == (f"no space left on device while writing {tmp_path}/latest.pth; "
                              f"the previous checkpoint is intact")
    assert snapshot(tmp_path) == before  # no temporary left, latest.pth untouched
    monkeypatch.undo()
    assert torch.equal(ck.safe_load(str(tmp_path / "latest.pth"))["model"]["w"], torch.ones(2))


def test_zip_archives_with_code_are_refused_as_backbones(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": PAYLOADS["os.system"]()}, protocol=2))
        archive.writestr("evil/code/__torch__.py", "")
    with pytest.raises(UnsafeCheckpointError, match=r"^key MODEL\.VITA\.BACKBONE_PATH: refusing"):
        _build(tmp_path, "MODEL.VITA.BACKBONE_PATH", path)
