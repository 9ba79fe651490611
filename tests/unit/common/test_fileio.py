"""common/fileio.py: atomic writes and the one temporary-file naming convention."""
from __future__ import annotations

import os

import pytest
import torch

from common import fileio
from common.fileio import (TEMP_MARKER, atomic_path, atomic_torch_save, atomic_write_bytes,
                             atomic_write_text, is_temp_file, remove_stale_temp_files, temp_path)


def test_temp_names_follow_one_convention(tmp_path):
    a, b = temp_path(str(tmp_path / "x.pth")), temp_path(str(tmp_path / "x.pth"))
    assert a != b and os.path.dirname(a) == str(tmp_path)
    assert os.path.basename(a).startswith("x.pth" + TEMP_MARKER)
    assert is_temp_file(a) and is_temp_file("latest.pth.tmp-123")  # the older pid-only form
    for name in ("latest.pth", "x.tmp-", "x.tmp-12a", "notes.tmp-old.txt", "x.tmp1234"):
        assert not is_temp_file(name), name


def test_writes_replace_atomically_and_leave_nothing_behind(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(str(path), "one")
    atomic_write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    atomic_torch_save({"w": torch.arange(3)}, str(tmp_path / "m.pth"))
    assert torch.equal(torch.load(tmp_path / "m.pth", weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f.txt", "m.pth"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_atomic_path_hands_a_sibling_to_path_writers(tmp_path):
    path = tmp_path / "a.json"
    with atomic_path(str(path)) as tmp:
        assert is_temp_file(tmp) and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("{}")
        assert not path.exists()  # visible only after the block
    assert path.read_text() == "{}"


def test_remove_stale_temp_files(tmp_path):
    (tmp_path / "latest.pth").write_bytes(b"real")
    stale = [tmp_path / "latest.pth.tmp-41", tmp_path / os.path.basename(
        temp_path(str(tmp_path / "best.pth")))]
    for p in stale:
        p.write_bytes(b"half")
    (tmp_path / "keep.tmp-dir.tmp-5").mkdir()  # folders are never touched
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert sorted(os.listdir(tmp_path)) == ["keep.tmp-dir.tmp-5", "latest.pth"]
    assert remove_stale_temp_files(str(tmp_path / "missing")) == []


def test_synthetic_set_writes_through_fileio(tmp_path, monkeypatch):
    from datasets.synthetic import generate_synthetic
    written = []
    real = fileio.atomic_path

    def spy(path):
        written.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(fileio, "atomic_path", spy)
    generate_synthetic(str(tmp_path), num_train=2, num_val=1, num_frames=4, size=16,
                       workers=1, progress=False)
    assert written[-4:] == ["train.csv", "val.csv", "classes.txt", ".complete.json"]
    assert written.count("000000.mp4") == 2 and len(written) == 7  # every clip, every list
    assert not [p for p in tmp_path.rglob("*") if is_temp_file(p.name)]
