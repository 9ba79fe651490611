"""What every entry point does around its work: exit codes, one-line errors, cleanup.

    def parse_args(argv=None): ...          # a parser made with new_parser() has --debug
    def run(args): ...                      # the work; may return an exit code
    main = make_main(parse_args, run)       # main(argv=None) -> exit code

Exit codes: 0 done; 2 bad input (a config, annotation or checkpoint error, a missing or
unwritable user path, a bad option: one ``error: ...`` line on stderr instead of a traceback);
3 training stopped on a non-finite loss, or a model gave non-finite outputs (NaN/inf
probabilities or features: never reported as numbers); 130 interrupted (Ctrl-C; a training run
says at which epoch and iteration). A full disk is bad input too (exit 2). Anything else is a bug and keeps its
traceback (exit 1). ``--debug`` or ``VIDEO_DEBUG=1`` prints the traceback of the
errors above too. Logging handlers and the process group are always closed.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import traceback
from typing import Callable

__all__ = ["UsageError", "user_errors", "EXIT_USER_ERROR", "EXIT_NON_FINITE", "EXIT_INTERRUPTED",
           "new_parser", "debug_requested", "exit_code", "one_line", "is_disk_full", "run_cli",
           "make_main"]

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class UsageError(ValueError):
    """A bad command-line value that argparse cannot check itself (e.g. an unknown model)."""


def user_errors() -> tuple:
    """The exception types that mean bad input, not a bug (imported late: ``--help`` stays fast)."""
    from datasets.annotations import AnnotationError
    from datasets.decoding import VideoDecodeError
    from engine.checkpoint import CheckpointError
    from engine.config import ConfigError
    from engine.runlock import RunLockedError
    return (UsageError, ConfigError, AnnotationError, CheckpointError, VideoDecodeError,
            RunLockedError, FileNotFoundError, FileExistsError, PermissionError,
            NotADirectoryError, IsADirectoryError)


_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
# How a DataLoader worker's exception comes back: "Caught X in DataLoader worker process N.
# Original Traceback (most recent call last): ..." with the error's own line last.
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in .*\nOriginal Traceback", re.DOTALL)
_EXCEPTION_PREFIX = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b: ")


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in _DISK_FULL


def one_line(err: BaseException) -> str:
    """The message of an expected error as one line: a DataLoader worker's wrapped traceback
    gives its last line (the original error), without the exception's class name."""
    text = str(err) or type(err).__name__
    if _WORKER_WRAPPED.match(text):
        lines = [line for line in text.splitlines() if line.strip()]
        text = _EXCEPTION_PREFIX.sub("", lines[-1].strip()) if lines else text
    if is_disk_full(err) and not text.startswith("no space left"):
        where = f" while writing {err.filename}" if getattr(err, "filename", None) else ""
        text = f"no space left on device{where}; free space or choose another OUTPUT"
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def new_parser(description: str | None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with the shared ``--debug`` flag."""
    parser = argparse.ArgumentParser(description=description, **kwargs)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: VIDEO_DEBUG=1)")
    return parser


def debug_requested(debug: bool = False) -> bool:
    return debug or os.environ.get("VIDEO_DEBUG", "").strip().lower() not in ("", "0", "false",
                                                                              "no")


def exit_code(err: BaseException) -> int | None:
    """The exit code of an expected failure; None for a bug (which keeps its traceback)."""
    from engine.guards import NonFiniteOutputError
    from engine.trainer import NonFiniteLossError
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, (NonFiniteLossError, NonFiniteOutputError)):
        return EXIT_NON_FINITE
    if isinstance(err, user_errors()) or is_disk_full(err):
        return EXIT_USER_ERROR
    return None


def _close_runtime() -> None:
    """Release log.txt and the process group whatever happened (safe when never opened)."""
    from engine import distributed
    from engine.logging import close_logging
    close_logging()
    distributed.cleanup()


def run_cli(job: Callable[[], int | None], debug: bool = False) -> int:
    """Run an entry point's work; returns its exit code (``job``'s int, else 0)."""
    try:
        code = job()
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - mapped or re-raised below
        code = exit_code(err)
        if code is None:
            raise
        if debug_requested(debug):
            traceback.print_exc()
        if code == EXIT_INTERRUPTED:  # a run may say where it stopped (engine.trainer)
            print(str(err).strip() or "interrupted", file=sys.stderr)
        else:
            print(f"error: {one_line(err)}", file=sys.stderr)
        return code
    finally:
        _close_runtime()
    return 0 if code is None else int(code)


def make_main(parse_args: Callable, run: Callable) -> Callable[..., int]:
    """``main(argv=None) -> int`` of an entry point: parse, then ``run(args)`` under run_cli."""
    def main(argv=None) -> int:
        args = parse_args(argv)
        return run_cli(lambda: run(args), debug=getattr(args, "debug", False))
    return main
