"""What a released weights file is, and where the project keeps downloaded ones.

Each model package declares its own released files beside its model, as a tuple of ``Weights``
(``video_focalnet/pretrained.py``, ``vita_clip/pretrained.py``) that its family hands to the
engine (``released_weights``); the engine's model zoo (``engine/zoo.py``) looks names up over
what the families declare, downloads, verifies and caches. Adding a released file is one entry
in its model package. This module is plain data and the cache folder's name: it downloads
nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Weights", "DEFAULT_DIR", "weights_dir", "google_drive_url"]

# The cache folder: $VIDEO_WEIGHTS_DIR, else this one. Files keep their ``file_name``.
DEFAULT_DIR = os.path.join("~", ".cache", "video-recognition", "weights")


@dataclass(frozen=True)
class Weights:
    """One released weights file."""

    name: str  # the zoo name, e.g. "video_focalnet_tiny_k400"
    file_name: str  # the name in the cache and on a mirror
    urls: tuple  # published sources, tried in order
    what: str  # one line: which network, trained on what
    key: str  # where it goes: "--checkpoint", "TRAIN.PRETRAINED_PATH", ...
    configs: tuple = ()  # configs it belongs to (the first one evaluates it)
    sha256: str | None = None  # published checksum; None = recorded at first download
    size: int | None = None  # bytes, when published
    top1: str = ""  # published top-1 accuracy (%) on the config's dataset
    params: str = ""  # parameters of the network as built by the config
    aliases: tuple = ()  # other names that resolve to this entry
    timm_name: str = ""  # timm ``arch.tag`` whose pretrained=True loads this file
    num_classes: int | None = None  # classes of the released head (timm's pretrained config)


def weights_dir() -> str:
    """``$VIDEO_WEIGHTS_DIR``, else ``~/.cache/video-recognition/weights``; NotADirectoryError
    when that names a file."""
    folder = os.path.expanduser(os.environ.get("VIDEO_WEIGHTS_DIR") or DEFAULT_DIR)
    if os.path.exists(folder) and not os.path.isdir(folder):
        source = "VIDEO_WEIGHTS_DIR" if os.environ.get("VIDEO_WEIGHTS_DIR") else "the cache"
        raise NotADirectoryError(f"{source} {folder} is a file, not a folder; point "
                                 f"VIDEO_WEIGHTS_DIR at a folder for the weights cache")
    return folder


def google_drive_url(file_id: str) -> str:
    """The direct-download URL of a Google Drive file (the downloader answers its confirm page)."""
    return f"https://drive.google.com/uc?export=download&id={file_id}"
