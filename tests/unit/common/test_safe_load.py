"""The project's one safe loader (common/safe_load.py): every reader of weight files (engine
checkpoints, Video-FocalNet weights, CLIP backbones) refuses code and damaged files with the same
error type and the same words, and reads the reference configs' yacs CfgNode as plain data."""
from __future__ import annotations

import os

import pytest
import torch
from yacs.config import CfgNode

from common.safe_load import CheckpointError, UnsafeCheckpointError, safe_torch_load
from engine.checkpoint import safe_load
from video_focalnet.checkpoint import read_state_dict
from vita_clip.weights import read_checkpoint

READERS = {"common": safe_torch_load, "engine": safe_load, "video_focalnet": read_state_dict,
           "vita_clip": read_checkpoint}


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should never run",))


@pytest.fixture
def files(tmp_path):
    unsafe, text = tmp_path / "unsafe.pth", tmp_path / "text.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": RunsCode()}, unsafe)
    text.write_text("not a checkpoint")
    return unsafe, text


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_code_with_one_wording(files, reader):
    unsafe, _ = files
    with pytest.raises(UnsafeCheckpointError) as err:
        READERS[reader](str(unsafe))
    assert str(err.value).startswith(
        f"refusing to load {unsafe}: it can only be read by executing arbitrary pickled code, "
        f"which this project never does (torch.load weights_only=True)")
    assert "weights_only=False" not in str(err.value)


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reports_a_damaged_file_with_one_wording(files, reader):
    _, text = files
    with pytest.raises(CheckpointError) as err:
        READERS[reader](str(text))
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert str(err.value) == (f"{text} is truncated, damaged or not a checkpoint (a file that "
                              f"torch.save wrote); check the path, or download or copy it again")


def test_reference_config_reads_as_plain_data(tmp_path):
    path = tmp_path / "reference.pth"
    cfg = CfgNode({"MODEL": CfgNode({"TYPE": "focalnet"})})
    torch.save({"model": {"w": torch.ones(3)}, "config": cfg}, path)
    data = safe_torch_load(str(path))
    assert type(data["config"]) is not CfgNode and data["config"]["MODEL"]["TYPE"] == "focalnet"
    assert torch.equal(read_state_dict(str(path))["w"], torch.ones(3))


def test_not_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        safe_torch_load(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not found"):
        safe_torch_load(str(tmp_path / "missing.pth"))
