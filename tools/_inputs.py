"""What the inference tools (predict, extract_features, visualize) read from their command
lines: the videos that inputs name, output folders proven writable before any work, a label set
given as ``--labels``, time windows (``--window``, ``--stride``), and the one-line reason a
video could not be decoded. The engine takes
plain lists and paths; turning flags into them is the tools' job.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Sequence

import datasets
from datasets.annotations import VIDEO_EXTENSIONS, AnnotationError, numbered_lines
from engine.checkpoint import ensure_writable_dir
from engine.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["collect_videos", "decode_failure", "writable_folder", "parse_labels", "check_window"]

LIST_EXTENSIONS = (".txt", ".csv", ".lst", ".list")


def _videos_under(folder: str) -> list[str]:
    """Video files at any depth. Symlinked folders are followed, each real folder once: a link
    that points back up (a loop) or twice at one folder adds no video twice."""
    found, seen = [], set()
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()
        found += [os.path.join(directory, f) for f in sorted(files)
                  if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
    return found


def _not_regular(path: str) -> bool:
    """An existing path that is no regular file (a FIFO, a device, a socket): opening one to
    decode it could block forever."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing: decoding reports it
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _list_entries(path: str) -> list[str]:
    """Video paths of a list file: the first field of ``path[,label]`` / ``path label`` lines
    (a test split file works as it is); relative paths are taken from the list's folder."""
    base = os.path.dirname(os.path.abspath(path))
    videos = []
    for _, line in numbered_lines(path):
        if line.startswith("#"):
            continue
        if "," in line:
            video = line.split(",", 1)[0].strip()
        else:
            fields = line.rsplit(None, 1)
            video = fields[0] if len(fields) == 2 and fields[1].lstrip("-").isdigit() else line
        videos.append(video if os.path.isabs(video) else os.path.join(base, video))
    if not videos:
        raise AnnotationError(f"{path}: the list file names no videos")
    return videos


def collect_videos(inputs: Sequence[str], what: str = "input") -> list[str]:
    """The videos that ``inputs`` name, in order and without repeats: video files, folders
    (searched at any depth for VIDEO_EXTENSIONS files) and list files (one video per line, as
    ``path`` or ``path,label``). A missing input or a folder without videos is an error naming
    it; a listed video that is missing is returned (its decoding reports it)."""
    videos: list[str] = []
    for item in inputs:
        if not os.path.exists(item):
            raise FileNotFoundError(f"{what} {item} does not exist")
        if os.path.isdir(item):
            found = _videos_under(item)
            if not found:
                raise FileNotFoundError(f"{what} folder {item} holds no videos "
                                        f"({', '.join(VIDEO_EXTENSIONS)}) at any depth")
            videos += found
        elif os.path.splitext(item)[1].lower() in LIST_EXTENSIONS and not _not_regular(item):
            videos += _list_entries(item)
        else:
            videos.append(item)
    videos = list(dict.fromkeys(videos))
    # the same file reached through a symlinked folder and directly counts once
    unique, real_paths = [], set()
    for video in videos:
        real = os.path.realpath(video)
        if real in real_paths:
            continue
        real_paths.add(real)
        if _not_regular(video):
            logger.warning("skipped %s: not a regular file (a FIFO, device or socket)", video)
            continue
        unique.append(video)
    if not unique and videos:
        raise FileNotFoundError(f"{what}: no regular video file among {len(videos)} path(s) "
                                f"(FIFOs, devices and sockets are skipped)")
    return unique


def decode_failure(path: str, err: Exception) -> str:
    """``path: reason`` for a video that could not be decoded, naming the path once (the
    decoders' messages already start with it)."""
    text = str(err)
    return text if text.startswith(path) else f"{path}: {text}"


def writable_folder(folder: str, flag: str) -> str:
    """Create ``folder`` and prove it writable before any work; PermissionError naming the
    command-line flag it came from otherwise."""
    try:
        return ensure_writable_dir(folder, flag)
    except PermissionError as err:
        cause = err.__cause__
        reason = getattr(cause, "strerror", None) or cause or err
        raise PermissionError(f"{flag}: cannot write into {folder} ({reason}); choose another "
                              f"path") from None


def check_window(window: float | None, stride: float | None) -> None:
    """``--window`` and ``--stride`` in seconds: each absent or a positive finite number, and a
    stride only with a window (checked before anything is written: a NaN window must not reach
    a features manifest)."""
    from tools._cli import UsageError
    if stride is not None and window is None:
        raise UsageError("--stride needs --window")
    for flag, value in (("--window", window), ("--stride", stride)):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise UsageError(f"{flag} {value}: give a positive, finite number of seconds")


def parse_labels(value: str) -> list[str]:
    """Class names from ``--labels``: a class file (datasets.read_class_names: one name per line
    or ``id,name`` CSV), else a comma-separated list. A value without a comma that looks like a
    path (a folder separator, or a list file's extension) must be an existing file: a mistyped
    file name is never taken for one class called like it."""
    if os.path.isdir(value):
        raise IsADirectoryError(f"--labels {value} is a folder; give a class file (one name "
                                f"per line) or names separated by commas")
    if os.path.isfile(value):
        return datasets.read_class_names(value)
    looks_like_a_path = "," not in value and (  # a comma list is names, slashes and all
        "/" in value or os.sep in value
        or os.path.splitext(value)[1].lower() in LIST_EXTENSIONS + (".json", ".yaml"))
    if looks_like_a_path:
        raise FileNotFoundError(f"--labels {value}: no such class file; check the path, or "
                                f"give names separated by commas")
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--labels {value!r}: no class names (give a file with one name per "
                          f"line, or names separated by commas)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--labels {value!r}: a name is listed twice")
    return names
