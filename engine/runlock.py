"""One run per OUTPUT: an exclusive lock file, ``OUTPUT/run.lock``.

The lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and
on NFS v3+), holding the owner's host, pid, process start time and command line. Only rank 0
takes it (the process that owns the run directory); the other ranks learn the outcome from it.

A second run on the same OUTPUT is refused with a message naming the process that holds the
lock. A lock left by a process that no longer exists (``kill -9``, a crash, a reboot) is stale:
on the same host that is detected from the pid and its start time (a reused pid has another
start time) and the lock is taken over. A lock held on another host cannot be checked from here
and is reported with its host, pid and start time, and how to remove it if that run is gone.

The lock is released when the run ends in any way Python sees (return, error, Ctrl-C) and is
also removed at interpreter exit.
"""
from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import socket
import sys

__all__ = ["LOCK_NAME", "RunLockedError", "RunLock", "read_lock", "lock_output"]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class RunLockedError(RuntimeError):
    """OUTPUT is in use by another run (the message names it)."""


def _process_start(pid: int) -> str | None:
    """An identifier of when ``pid`` started (Linux: clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat", "r", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of stat, starttime


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def read_lock(path: str) -> dict | None:
    """The lock's owner record, {} for an unreadable lock file, None when there is no lock."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "a process whose lock file cannot be read"
    command = " ".join(owner.get("command") or [])
    return (f"pid {owner.get('pid')} on {owner.get('host')}, started "
            f"{owner.get('start_time')}" + (f" ({command})" if command else ""))


def _is_stale(owner: dict) -> bool:
    """True when ``owner`` (a lock record) certainly belongs to a process that is gone."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if not _alive(pid):
        return True
    recorded, current = owner.get("proc_start"), _process_start(pid)
    return recorded is not None and current is not None and recorded != current


class RunLock:
    """``with RunLock(output_dir): ...`` or ``acquire()`` / ``release()``."""

    def __init__(self, output_dir: str, what: str = "run"):
        self.directory = os.path.abspath(output_dir)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.what = what
        self.record: dict | None = None
        self._held = False

    def _new_record(self) -> dict:
        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "proc_start": _process_start(pid),
                "start_time": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": list(sys.argv), "what": self.what}

    def _try_create(self) -> bool:
        record = self._new_record()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.record = record
        return True

    def _take_over_stale(self, owner: dict) -> None:
        """Remove a stale lock, unless another process replaced it meanwhile."""
        aside = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, aside)  # only one process can move a given file
        except FileNotFoundError:
            return
        if read_lock(aside) == owner:
            os.remove(aside)
            logger.warning("removed the lock of a run that no longer exists (%s)",
                           _describe(owner))
            return
        try:  # we moved a fresh lock: put it back (fails if yet another one was created)
            os.link(aside, self.path)
        except OSError:
            pass
        os.remove(aside)

    def acquire(self) -> "RunLock":
        os.makedirs(self.directory, exist_ok=True)
        for _ in range(5):
            if self._try_create():
                self._held = True
                atexit.register(self.release)
                return self
            owner = read_lock(self.path)
            if owner is None:  # released meanwhile
                continue
            if _is_stale(owner):
                self._take_over_stale(owner)
                continue
            break
        owner = read_lock(self.path) or {}
        same_host = owner.get("host") == socket.gethostname()
        hint = ("wait for it to finish or stop it" if same_host else
                f"if that run is gone (it ran on another host, which cannot be checked from "
                f"here), delete {self.path}")
        raise RunLockedError(f"OUTPUT {self.directory} is in use by another run: "
                             f"{_describe(owner)}; {hint}, or choose another OUTPUT "
                             f"(--output DIR or --opts OUTPUT DIR)")

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if read_lock(self.path) == self.record:  # never remove a lock that is not ours
            try:
                os.remove(self.path)
            except OSError:
                pass
        try:
            atexit.unregister(self.release)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass

    @property
    def held(self) -> bool:
        return self._held

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_output(output_dir: str, dist_info, what: str = "run") -> RunLock | None:
    """Rank 0 takes OUTPUT's lock; every rank raises the same RunLockedError when it is held.
    Returns the held lock on rank 0, None elsewhere."""
    from . import distributed as du

    lock, refusal = None, None
    if dist_info.is_main:
        try:
            lock = RunLock(output_dir, what).acquire()
        except RunLockedError as err:
            refusal = str(err)
    refusal = du.broadcast_object(refusal)
    if refusal:
        raise RunLockedError(refusal)
    return lock
