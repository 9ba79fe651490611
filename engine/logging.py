"""What a run tells its user: log file, progress, TensorBoard, resolved config and run info."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time

import torch

from common.fileio import atomic_write_text

__all__ = ["setup_logging", "start_log_file", "close_logging", "TensorBoardWriter", "Progress",
           "write_run_info", "write_config", "config_hash", "git_commit", "memory_mb",
           "format_seconds"]

_HANDLER_TAG = "_vrengine_handler"
logger = logging.getLogger(__name__)


class _PendingLogFile(logging.Handler):
    """Holds the records meant for OUTPUT/log.txt until the run is accepted (start_log_file):
    a run refused after its checks leaves log.txt as it was."""

    def __init__(self, path: str, level: int):
        super().__init__(level)
        self.path = path
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def setup_logging(output_dir: str | None, rank: int = 0, level: int = logging.INFO,
                  defer_file: bool = False) -> None:
    """Rank 0: INFO to stdout and OUTPUT/log.txt. Other ranks: warnings only, prefixed.

    With ``defer_file`` nothing is written to log.txt until ``start_log_file()``, which writes
    the records held so far first; without that call log.txt is never touched."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
    fmt = logging.Formatter("[%(asctime)s %(name)s] %(levelname)s: %(message)s",
                            datefmt="%Y-%m-%d %H:%M:%S")
    handlers = []
    if rank == 0:
        stream = logging.StreamHandler(sys.stdout)
        stream.setLevel(level)
        handlers.append(stream)
        if output_dir and defer_file:
            handlers.append(_PendingLogFile(os.path.join(output_dir, "log.txt"), level))
        elif output_dir:
            os.makedirs(output_dir, exist_ok=True)
            file_handler = logging.FileHandler(os.path.join(output_dir, "log.txt"), mode="a")
            file_handler.setLevel(level)
            handlers.append(file_handler)
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.WARNING)
        stream.setFormatter(logging.Formatter(f"[rank {rank}] %(levelname)s: %(message)s"))
        handlers.append(stream)
    for handler in handlers:
        if handler.formatter is None:
            handler.setFormatter(fmt)
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)
    root.setLevel(min(level, root.level) if root.level else level)


def start_log_file() -> None:
    """Open the log.txt that ``setup_logging(..., defer_file=True)`` held back, writing the
    records held so far first (a no-op when nothing is held back)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not isinstance(handler, _PendingLogFile):
            continue
        os.makedirs(os.path.dirname(handler.path) or ".", exist_ok=True)
        file_handler = logging.FileHandler(handler.path, mode="a")
        file_handler.setLevel(handler.level)
        file_handler.setFormatter(handler.formatter)
        setattr(file_handler, _HANDLER_TAG, True)
        for record in handler.records:
            file_handler.handle(record)
        root.removeHandler(handler)
        root.addHandler(file_handler)


def close_logging() -> None:
    """Detach and close the handlers setup_logging added (log.txt is released)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()


def format_seconds(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


def memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or the process's peak resident memory (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        import resource
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak_kb / 1024.0 if sys.platform != "darwin" else peak_kb / 2 ** 20
    except (ImportError, OSError):
        return 0.0


@contextlib.contextmanager
def ctrl_c_deferred():
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it as usual.

    A KeyboardInterrupt that lands inside ``queue.Queue.put`` can drop the wake-up of the thread
    waiting on the queue: TensorBoard's writer thread then sleeps forever and ``close()`` (which
    joins it) hangs the interrupted run. Outside the main thread, or where SIGINT's handler was
    not set from Python, signals cannot be redirected and the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:
        yield
        return
    held = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, held[0])  # Python's default handler raises KeyboardInterrupt
        elif held and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class TensorBoardWriter:
    """SummaryWriter under OUTPUT/tb on rank 0; a no-op elsewhere or when unavailable.

    Every call holds Ctrl-C until it returns (ctrl_c_deferred): an interrupted run still closes
    its event file instead of hanging."""

    def __init__(self, log_dir: str | None, enabled: bool = True):
        self._writer = None
        if not (enabled and log_dir):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is in requirements.txt; stay usable without it
            logger.warning("TensorBoard logging disabled: %s", err)
            return
        self._writer = SummaryWriter(log_dir=log_dir)

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        if self._writer is None:
            return
        with ctrl_c_deferred():
            for key, value in values.items():
                if value is not None:
                    self._writer.add_scalar(f"{prefix}{key}", float(value), step)

    def flush(self) -> None:
        if self._writer is not None:
            with ctrl_c_deferred():
                self._writer.flush()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with ctrl_c_deferred():
                writer.close()


class Progress:
    """A tqdm bar with ETA on a TTY, plain log lines every `print_freq` iterations otherwise."""

    def __init__(self, total: int, desc: str, print_freq: int, enabled: bool = True,
                 use_tty: bool | None = None):
        self.total = total
        self.desc = desc
        self.print_freq = max(1, print_freq)
        self.enabled = enabled
        self.start = time.time()
        use_tty = sys.stdout.isatty() if use_tty is None else use_tty
        self._bar = None
        if enabled and use_tty:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, index: int, **values) -> None:
        """Called after iteration `index` (0-based) with the values to show."""
        if not self.enabled:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(shown, refresh=False)
            return
        done = index + 1
        if done % self.print_freq == 0 or done == self.total:
            elapsed = time.time() - self.start
            eta = elapsed / done * (self.total - done)
            fields = "  ".join(f"{k} {v}" for k, v in shown.items())
            logger.info("%s [%d/%d]  eta %s  %s", self.desc, done, self.total,
                        format_seconds(eta), fields)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def config_hash(cfg) -> str:
    """sha256 of the resolved config's YAML text."""
    return hashlib.sha256(cfg.dump().encode("utf-8")).hexdigest()


def write_config(output_dir: str, cfg) -> str:
    path = os.path.join(output_dir, "config.yaml")
    atomic_write_text(path, cfg.dump())
    return path


def git_commit(start: str | None = None) -> str | None:
    """HEAD's commit read from the .git folder (no git process), or None outside a checkout."""
    directory = os.path.abspath(start or os.path.dirname(os.path.dirname(__file__)))
    while True:
        git_dir = os.path.join(directory, ".git")
        if os.path.isfile(git_dir):  # worktree / submodule: "gitdir: PATH"
            with open(git_dir, encoding="utf-8") as f:
                content = f.read().strip()
            if content.startswith("gitdir:"):
                git_dir = os.path.join(directory, content.split(":", 1)[1].strip())
        if os.path.isdir(git_dir):
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    try:
        with open(os.path.join(git_dir, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        ref_path = os.path.join(git_dir, ref)
        if os.path.isfile(ref_path):
            with open(ref_path, encoding="utf-8") as f:
                return f.read().strip()
        packed = os.path.join(git_dir, "packed-refs")
        if os.path.isfile(packed):
            with open(packed, encoding="utf-8") as f:
                for line in f:
                    parts = line.strip().split(" ")
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except OSError:
        pass
    return None


def _read_json_dict(path: str) -> dict | None:
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_run_info(output_dir: str, cfg, dist_info, extra: dict | None = None,
                   restart: dict | None = None) -> str:
    """OUTPUT/run_info.json: commit, versions, device and world size, command line.

    When the file exists (a restarted or resumed run) its first ``start_time`` is kept and
    ``restarts`` gains a record of this start (time, command, host, and ``restart``'s fields,
    e.g. the checkpoint resumed from); the other fields describe the latest start."""
    now = datetime.datetime.now().isoformat(timespec="seconds")
    path = os.path.join(output_dir, "run_info.json")
    previous = _read_json_dict(path) if os.path.isfile(path) else None
    info = {
        "start_time": now,
        "command": sys.argv,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "gpu": (torch.cuda.get_device_name(dist_info.device)
                if dist_info.device.type == "cuda" else None),
        "device": str(dist_info.device),
        "world_size": dist_info.world_size,
        "backend": dist_info.backend or None,
        "config_hash": config_hash(cfg),
    }
    try:
        import timm
        info["timm"] = timm.__version__
    except ImportError:
        pass
    info.update(extra or {})
    if previous is not None:
        info["start_time"] = previous.get("start_time", now)
        info["restarts"] = list(previous.get("restarts") or []) + [
            {"time": now, "command": sys.argv, "host": info["host"],
             "world_size": dist_info.world_size, "config_hash": info["config_hash"],
             **(restart or {})}]
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    return path
