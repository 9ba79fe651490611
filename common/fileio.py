"""Atomic file writes with one temporary-file naming convention for the whole project.

A file is written into a temporary sibling ``<name>.tmp-<pid>-<random>`` (same folder, so the
final ``os.replace`` is an atomic rename on the same filesystem), flushed and fsynced, then
renamed over the real name; the folder is fsynced so the rename survives a crash. A reader
therefore sees either the old file or the complete new one, never a half-written file.

A process killed mid-write leaves only its temporary behind. Every temporary in the project is
named by ``temp_path`` and recognised by ``is_temp_file``, so ``remove_stale_temp_files`` (called
by the trainer on its output folder at start-up) finds all of them, whoever wrote them.

Every layer writes files (the data layer its synthetic set, the engine its checkpoints and logs,
the tools their reports), so this module lives in the bottom package ``common`` that every layer
imports (``from common.fileio import atomic_torch_save``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from typing import Callable, Iterator

__all__ = ["TEMP_MARKER", "temp_path", "is_temp_file", "remove_stale_temp_files", "atomic_path",
           "atomic_write_bytes", "atomic_write_text", "atomic_torch_save", "fsync_dir"]

logger = logging.getLogger(__name__)

TEMP_MARKER = ".tmp-"
# <final name>.tmp-<pid>[-<hex token>]; the token-less form is what earlier versions wrote.
_TEMP_SUFFIX = re.compile(re.escape(TEMP_MARKER) + r"\d+(-[0-9a-f]+)?$")


def temp_path(path: str) -> str:
    """A fresh temporary sibling of ``path`` (unique per process and call)."""
    return f"{os.path.abspath(path)}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_file(name: str) -> bool:
    """True for a name (or path) made by ``temp_path``."""
    return bool(_TEMP_SUFFIX.search(os.path.basename(name)))


def remove_stale_temp_files(directory: str) -> list[str]:
    """Delete the temporaries directly inside ``directory`` (left by a killed writer); returns
    the removed paths. Only call it when no other process is writing into ``directory``."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:  # missing folder: nothing to clean
        return removed
    for name in sorted(names):
        path = os.path.join(directory, name)
        if is_temp_file(name) and os.path.isfile(path):
            try:
                os.remove(path)
            except OSError:
                continue
            logger.info("removed %s, left by an interrupted write", name)
            removed.append(path)
    return removed


def fsync_dir(directory: str) -> None:
    """Make a rename inside ``directory`` durable (a no-op where the platform cannot)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write ``path`` through (for writers that want a file name).

    On normal exit the temporary is fsynced and renamed over ``path``; on an exception it is
    removed and ``path`` is untouched. The parent folder is created if needed."""
    final = os.path.abspath(path)
    directory = os.path.dirname(final)
    os.makedirs(directory, exist_ok=True)
    tmp = temp_path(final)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def _atomic_write(path: str, write: Callable) -> None:
    """Write through ``write(binary_file)`` and replace ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()


def atomic_write_bytes(path: str, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str) -> None:
    import torch  # imported here: the rest of this module is plain file handling
    _atomic_write(path, lambda f: torch.save(obj, f))
