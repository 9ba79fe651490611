"""tools/_inputs.py: the videos that command-line inputs name, and --labels."""
from __future__ import annotations

import pytest

from engine.config import ConfigError
from tools._inputs import collect_videos, parse_labels


def test_collect_videos(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/b/z.mp4", "a/y.MKV", "a/notes.txt", "x.avi"):
        (tmp_path / name).write_bytes(b"")
    listing = tmp_path / "list.csv"
    listing.write_text("# comment\nx.avi,3\n/abs/path/v.mp4 7\nsome dir/with space.mp4\n")
    found = collect_videos([str(tmp_path / "a"), str(listing), str(tmp_path / "x.avi")])
    assert found == [str(tmp_path / "a" / "y.MKV"), str(tmp_path / "a" / "b" / "z.mp4"),
                     str(tmp_path / "x.avi"), "/abs/path/v.mp4",
                     str(tmp_path / "some dir" / "with space.mp4")]  # no repeats
    with pytest.raises(FileNotFoundError, match="missing.mp4 does not exist"):
        collect_videos([str(tmp_path / "missing.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no videos"):
        collect_videos([str(tmp_path / "empty")], what="--input")


def test_parse_labels(tmp_path):
    assert parse_labels(" archery, bowling ,juggling ") == ["archery", "bowling", "juggling"]
    (tmp_path / "names.txt").write_text("playing guitar\n\nsurfing\n")
    assert parse_labels(str(tmp_path / "names.txt")) == ["playing guitar", "surfing"]
    with pytest.raises(ConfigError, match="twice"):
        parse_labels("a,b,a")
    with pytest.raises(ConfigError, match="no class names"):
        parse_labels(" , ")
