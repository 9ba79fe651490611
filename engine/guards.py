"""Checks that keep a tool's answer trustworthy, shared by every entry point.

* ``require_finite``: a model output (probabilities, features, fused scores) with NaN or inf is
  an error naming how many rows and where, never a number to report. A diverged or
  fp16-overflowed checkpoint gives NaN everywhere; averaging or ranking NaN gives a plausible
  looking but meaningless accuracy (argmax of NaN is index 0).
* ``refuse_overwriting_inputs``: no tool writes over a file or folder it reads. Paths are
  compared after resolving symlinks, ``..`` and relative spellings.
* ``no_empty_folders_on_failure``: a run that fails leaves no empty folder it created.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator

import numpy as np
import torch

__all__ = ["NonFiniteOutputError", "non_finite_rows", "require_finite",
           "non_finite_videos_error", "same_path",
           "refuse_overwriting_inputs", "no_empty_folders_on_failure"]


class NonFiniteOutputError(ArithmeticError):
    """A model output that cannot be reported (NaN or inf); exit status 3 like a non-finite
    training loss."""


def non_finite_rows(values) -> np.ndarray:
    """Boolean (N,) mask of the rows of ``values`` (tensor or array, (N, ...)) holding a NaN
    or an inf."""
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return ~np.isfinite(values.reshape(1))
    return ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)


def require_finite(values, what: str, where: str, unit: str = "videos",
                   advice: str | None = None) -> None:
    """NonFiniteOutputError when any row of ``values`` is not finite: ``N of M <unit> got
    non-finite <what> (NaN/inf) in <where>; <advice>``."""
    bad = non_finite_rows(values)
    if not bad.any():
        return
    advice = advice or ("the model's weights are broken (a diverged run) or its precision "
                        "overflows (TRAIN.AMP fp16): check the checkpoint, or evaluate with "
                        "--opts TRAIN.AMP off; nothing was reported")
    raise NonFiniteOutputError(f"{int(bad.sum())} of {bad.size} {unit} got non-finite {what} "
                               f"(NaN/inf) in {where}; {advice}")


def non_finite_videos_error(rows: list, videos: int, what: str, checkpoint: str,
                            outcome: str) -> NonFiniteOutputError:
    """The error of a per-video tool (predict, extract_features) whose ``rows`` ``(video,
    bad windows, windows)`` got non-finite ``what``; ``outcome`` says what was not written."""
    windows = sum(n for _, n, _ in rows)
    total = sum(t for _, _, t in rows)
    return NonFiniteOutputError(
        f"{len(rows)} of {videos} videos ({windows} of {total} window(s) of those) got "
        f"non-finite {what} (NaN/inf) from --checkpoint {checkpoint}, first {rows[0][0]}; the "
        f"model's weights are broken (a diverged run) or its precision overflows (TRAIN.AMP "
        f"fp16): {outcome}")


def _resolved(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two spellings name the same file or folder (symlinks and ``..`` resolved; two
    existing paths also compared by device and inode, which catches hard links)."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, folder: str) -> bool:
    path, folder = _resolved(path), _resolved(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_overwriting_inputs(output: str | os.PathLike | None, flag: str,
                              inputs: Iterable[tuple[str, str | os.PathLike]],
                              folder: bool = False) -> None:
    """FileExistsError (one line, exit 2) when ``output`` (given with ``flag``) names one of
    ``inputs`` (``(what, path)`` pairs): the tool would destroy what it reads. With ``folder``
    ``output`` is a folder the tool writes into: an input inside it counts too."""
    if not output:
        return
    for what, path in inputs:
        if not path:
            continue
        clash = same_path(output, path) or (folder and _inside(path, output))
        if clash:
            raise FileExistsError(f"{flag} {os.fspath(output)} is {what} {os.fspath(path)}, "
                                  f"which this command reads; writing there would destroy it: "
                                  f"choose another {flag}")




@contextlib.contextmanager
def no_empty_folders_on_failure(folder: str | os.PathLike) -> Iterator[None]:
    """On an exception inside the block, remove ``folder`` and the parents the block created for
    it, as far as they are empty: a refused or failed run leaves nothing behind that looks like
    a run. Folders that existed before are never removed."""
    folder = os.path.abspath(os.fspath(folder))
    missing = []  # the folders that do not exist yet, deepest first
    path = folder
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        yield
    except BaseException:
        for path in missing:
            try:
                os.rmdir(path)  # only an empty folder goes
            except OSError:
                break
        raise
