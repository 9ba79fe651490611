"""Reading weight and checkpoint files without ever executing code from them, for every layer.

Every ``.pth`` / ``.pt`` file of the project is read by ``safe_torch_load``: ``torch.load`` with
``weights_only=True`` and one allow-list entry. Reference Video-FocalNet checkpoints pickle their
yacs ``CfgNode`` under ``"config"``; that global is mapped onto ``collections.OrderedDict`` (a
container the weights-only unpickler builds itself), so the config comes back as nested dicts
and no yacs code runs. Our own files and Vita-CLIP's are plain already.

A file that cannot be used raises ``CheckpointError`` with one wording, whoever reads it: either
"refusing to load PATH: it can only be read by executing arbitrary pickled code ..."
(``UnsafeCheckpointError``) or "PATH is truncated, damaged or not a checkpoint ...". Torch's own
text is never repeated: it advises ``weights_only=False``, which runs the file's code.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from collections import OrderedDict

import torch

__all__ = ["CheckpointError", "UnsafeCheckpointError", "SAFE_GLOBALS", "safe_torch_load",
           "load_error", "unsafe_error", "check_file", "with_prefix"]

# The one global reference checkpoints pickle: yacs.config.CfgNode, read as a plain OrderedDict.
SAFE_GLOBALS = [(OrderedDict, "yacs.config.CfgNode")]


class CheckpointError(RuntimeError):
    """A checkpoint or weight file that is missing, truncated, unsafe or of an unknown layout."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that could only be read by executing arbitrary pickled code."""


# Words of torch's weights-only refusals that mean "this file needs code to be read"; matched
# case-insensitively (torch words them differently per payload and version).
_UNSAFE_MARKERS = ("unsupported global", "global ", "unrecognized function", "can only create new",
                   "can only build", "blocked", "allowed global", "not an allowed")
# Pickle opcodes that import or call something: a file that holds one and that the weights-only
# unpickler refused needs code to be read.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _referenced_globals(path: str, limit: int = 3) -> list[str] | None:
    """The ``module.name`` globals a plain (non-zip) pickle file names, read with pickletools
    (nothing is imported or run); None when the file is not a parsable pickle or names none."""
    import pickletools
    import zipfile
    if zipfile.is_zipfile(path):
        return None
    names, strings, calls = [], [], False
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE",
                                   "BINUNICODE8"):
                    strings = (strings + [arg])[-2:]
                elif opcode.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                    names.append(".".join(strings))
                calls = calls or opcode.name in _CODE_OPCODES
                if len(names) >= limit:
                    break
    except Exception:  # noqa: BLE001 - not a pickle, or a damaged one
        return None
    return names if (names or calls) else None


def unsafe_error(path: str, named=(), what: str = "") -> UnsafeCheckpointError:
    """The one wording for a file that needs code to be read; ``named``: the globals it names."""
    refs = f" (it references {', '.join(dict.fromkeys(named))})" if named else ""
    return UnsafeCheckpointError(
        f"{what}refusing to load {path}: it can only be read by executing arbitrary pickled "
        f"code, which this project never does (torch.load weights_only=True){refs}. If the "
        f"file is yours, re-save just its tensors (a dict of state_dicts, numbers and "
        f"strings) from a trusted environment.")


def load_error(path: str, err: BaseException, what: str = "") -> CheckpointError:
    """The one-line error for a file that ``torch.load(weights_only=True)`` refused or could not
    read. ``what`` prefixes it (e.g. "key TRAIN.PRETRAINED_PATH: "). Torch's own text is never
    repeated: it advises ``weights_only=False``, which runs the file's code."""
    text = str(err)
    lowered = text.lower()
    unsafe = isinstance(err, pickle.UnpicklingError) and any(m in lowered for m in _UNSAFE_MARKERS)
    named = re.findall(r"global ([\w.]+)", text, flags=re.IGNORECASE)
    if isinstance(err, pickle.UnpicklingError) and not unsafe:
        found = _referenced_globals(path)
        if found is not None:
            unsafe, named = True, found
    if unsafe:
        return unsafe_error(path, named, what)
    return CheckpointError(f"{what}{path} is truncated, damaged or not a checkpoint (a file that "
                           f"torch.save wrote); check the path, or download or copy it again")


def check_file(path: str, what: str = "checkpoint") -> None:
    """FileNotFoundError / IsADirectoryError naming ``what`` for a path that is not a file."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory; give the path of a .pth file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def safe_torch_load(path: str, map_location="cpu", what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` with the allow-list above. A path that is not a
    file raises FileNotFoundError / IsADirectoryError naming ``what``; a file that cannot be
    read raises the CheckpointError of ``load_error``."""
    check_file(path, what)
    try:
        # torch warns about pickle protocols it reads anyway; the answer is our own line
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - every reading failure gets the same two messages
        raise load_error(path, err) from err


def with_prefix(err: CheckpointError, what: str) -> CheckpointError:
    """The same error (same class) with ``what`` in front, e.g. "key TRAIN.PRETRAINED_PATH: "."""
    return type(err)(f"{what}{err}")
