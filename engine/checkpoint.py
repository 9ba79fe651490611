"""Checkpoints: atomic saving, loading that never executes code, auto-resume.

Our files are plain dicts of tensors and Python scalars/strings (the config is a YAML string), so
``torch.load(weights_only=True)`` reads them with no allow-list at all. Every file is read by
``common.safe_load.safe_torch_load`` (the project's one safe loader, with its one allow-list
entry for reference checkpoints) and every unreadable or unsafe file raises its CheckpointError.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import random
import re
import shutil
import socket
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from common.fileio import atomic_path, atomic_torch_save, fsync_dir, temp_path
from common.modules import unwrap_model
from common.safe_load import CheckpointError, UnsafeCheckpointError, safe_torch_load

logger = logging.getLogger(__name__)

__all__ = ["CheckpointError", "UnsafeCheckpointError", "FORMAT", "ensure_writable_dir",
           "require_checkpoint_file", "safe_load",
           "disk_full_error",
           "strip_prefix", "extract_state_dict", "load_model_weights", "capture_rng_state",
           "restore_rng_state", "build_checkpoint", "save_checkpoint", "find_resume_checkpoint",
           "checkpoint_to_cfg_yaml"]

FORMAT = "vrengine-1"  # marks files written by this engine (strict loading applies)

# Key prefixes that DistributedDataParallel / torch.compile wrappers add to saved state dicts, in
# the order they are stripped: a compiled DDP model saves "_orig_mod.module.", a DDP-wrapped
# compiled one "module._orig_mod." (the engine itself saves the unwrapped model).
WRAPPER_PREFIXES = ("_orig_mod.", "module.", "_orig_mod.")

# ---------------------------------------------------------------------------------------------
# Writing (atomic: common/fileio.py holds the project's one implementation)
# ---------------------------------------------------------------------------------------------
def _atomic_link_or_copy(src: str, dst: str) -> None:
    """`dst` becomes a copy of the finished file `src` (a hard link when the filesystem allows)."""
    tmp = temp_path(dst)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
        fsync_dir(os.path.dirname(os.path.abspath(dst)))
    except OSError:  # no hard links here (some network filesystems): copy, then rename
        if os.path.exists(tmp):
            os.remove(tmp)
        with atomic_path(dst) as tmp_copy:
            shutil.copyfile(src, tmp_copy)


def ensure_writable_dir(path: str, what: str = "OUTPUT") -> str:
    """Create `path` and prove it is writable, or raise a clear error before any work starts."""
    path = os.path.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{socket.gethostname()}-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as err:
        raise PermissionError(f"{what} directory {path} is not writable ({err.strerror or err}); "
                              f"choose another with --output DIR or --opts {what} DIR") from err
    return path


# ---------------------------------------------------------------------------------------------
# Safe loading
# ---------------------------------------------------------------------------------------------
def require_checkpoint_file(path: str, what: str = "--checkpoint") -> None:
    """A checkpoint path that is not a file: one line naming the flag (a folder as such)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory; give the path of a checkpoint "
                                f"file (.pth)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")


def safe_load(path: str, map_location="cpu") -> dict:
    """A checkpoint dict, read without executing code (common.safe_load); clear errors."""
    obj = safe_torch_load(path, map_location)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def strip_prefix(state_dict: dict, prefix: str = "module.") -> dict:
    """Drop `prefix` from every key that has it (DDP-saved state dicts)."""
    if not any(k.startswith(prefix) for k in state_dict):
        return state_dict
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())


def extract_state_dict(ckpt: dict) -> dict:
    """The model weights of any supported layout: ours, Video-FocalNet's, Vita-CLIP's, bare."""
    if "model" in ckpt and isinstance(ckpt["model"], dict):
        state = ckpt["model"]
    elif "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        state = ckpt["state_dict"]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt
    else:
        raise CheckpointError(f"no model weights found (keys: {sorted(ckpt)[:10]}); expected a "
                              f"'model' entry or a bare state dict")
    for prefix in WRAPPER_PREFIXES:
        state = strip_prefix(state, prefix)
    return state


def load_model_weights(model: nn.Module, ckpt: dict | str, strict: bool | None = None,
                       source: str = "") -> tuple[list, list]:
    """Load weights into `model` (unwrapped); strict for our own files unless told otherwise.

    Returns (missing, unexpected) key lists and logs them.
    """
    if isinstance(ckpt, str):
        source = source or ckpt
        ckpt = safe_load(ckpt)
    ours = ckpt.get("format") == FORMAT
    strict = ours if strict is None else strict
    state = extract_state_dict(ckpt)
    target = unwrap_model(model)
    try:
        result = target.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise CheckpointError(f"{source or 'checkpoint'} does not match the model built from the "
                              f"config (check MODEL.TYPE, sizes, MODEL.NUM_CLASSES / class list): "
                              f"{_mismatch(state, target.state_dict(), strict)}") from err
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        logger.warning("%s: %d missing keys %s; %d unexpected keys %s", source or "checkpoint",
                       len(missing), missing[:8], len(unexpected), unexpected[:8])
    else:
        logger.info("loaded weights from %s (all keys matched)", source or "checkpoint")
    return missing, unexpected


def _mismatch(state: dict, target: dict, strict: bool) -> str:
    """What differs between a state dict and a model's, in a few words."""
    def some(keys: list) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    missing = [k for k in target if k not in state] if strict else []
    unexpected = [k for k in state if k not in target] if strict else []
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in state.items()
              if k in target and hasattr(v, "shape") and tuple(v.shape) != tuple(target[k].shape)]
    parts = [f"{len(keys)} {what} ({some(keys)})" for what, keys in
             (("missing keys", missing), ("unexpected keys", unexpected),
              ("shape mismatches", shapes)) if keys]
    return "; ".join(parts) or "the weights do not fit"


def checkpoint_to_cfg_yaml(ckpt: dict) -> str | None:
    """The config stored in a checkpoint as YAML text (ours: a string; reference: nested dicts)."""
    import yaml
    cfg = ckpt.get("config")
    if isinstance(cfg, str):
        return cfg
    if isinstance(cfg, dict):
        def plain(node):
            if isinstance(node, dict):
                return {k: plain(v) for k, v in node.items()}
            if isinstance(node, tuple):
                return [plain(v) for v in node]
            return node
        return yaml.safe_dump(plain(cfg))
    return None


# ---------------------------------------------------------------------------------------------
# RNG state as plain tensors / scalars
# ---------------------------------------------------------------------------------------------
def capture_rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda_states])


# ---------------------------------------------------------------------------------------------
# Saving and resuming
# ---------------------------------------------------------------------------------------------
def build_checkpoint(model: nn.Module, optimizer=None, scheduler=None, scaler=None, *,
                     epoch: int, iteration: int, max_accuracy: float, config_yaml: str,
                     rng_states: list | None = None, extra: dict | None = None) -> dict:
    """The plain dict we save (loadable with weights_only=True, no allow-list)."""
    target = unwrap_model(model)
    ckpt = {
        "format": FORMAT,
        "model": target.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "iteration": int(iteration),
        "max_accuracy": float(max_accuracy),
        "config": config_yaml,
        "rng": rng_states if rng_states is not None else [capture_rng_state()],
    }
    if extra:
        ckpt.update(extra)
    return ckpt


def save_checkpoint(ckpt: dict, output_dir: str, epoch: int, save_freq: int,
                    is_best: bool, last_epoch: bool = False) -> list[str]:
    """latest.pth (always), ckpt_epoch_{e}.pth (every save_freq epochs and the last), best.pth.

    latest.pth is written first and atomically; the others are links/copies of the finished
    file, so a kill at any moment leaves every earlier file intact.
    """
    latest = os.path.join(output_dir, "latest.pth")
    with disk_full_error(latest):
        atomic_torch_save(ckpt, latest)
    written = [latest]
    if (epoch + 1) % save_freq == 0 or last_epoch:
        path = os.path.join(output_dir, f"ckpt_epoch_{epoch}.pth")
        with disk_full_error(path):
            _atomic_link_or_copy(latest, path)
        written.append(path)
    if is_best:
        path = os.path.join(output_dir, "best.pth")
        with disk_full_error(path):
            _atomic_link_or_copy(latest, path)
        written.append(path)
    return written


@contextlib.contextmanager
def disk_full_error(path: str):
    """A full disk (or quota) while writing ``path`` atomically becomes one CheckpointError; the
    file's previous version is untouched (the write went to a temporary that is removed)."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        raise CheckpointError(f"no space left on device while writing {path}; the previous "
                              f"checkpoint is intact") from err


def _resume_candidates(output_dir: str) -> list[str]:
    latest = os.path.join(output_dir, "latest.pth")
    numbered = []
    for path in glob.glob(os.path.join(output_dir, "ckpt_epoch_*.pth")):
        match = re.fullmatch(r"ckpt_epoch_(\d+)\.pth", os.path.basename(path))
        if match:
            numbered.append((int(match.group(1)), path))
    ordered = [p for _, p in sorted(numbered, reverse=True)]
    return ([latest] if os.path.isfile(latest) else []) + ordered


def find_resume_checkpoint(output_dir: str) -> tuple[str | None, dict | None]:
    """The newest checkpoint in `output_dir` that loads; corrupt ones are skipped with a warning."""
    for path in _resume_candidates(output_dir):
        try:  # an unsafe file stops the run: it was put there, it was not left by a crash
            ckpt = safe_load(path)
            if "model" not in ckpt or "epoch" not in ckpt:
                raise CheckpointError(f"{path} lacks 'model'/'epoch' entries")
        except UnsafeCheckpointError:
            raise
        except (CheckpointError, OSError) as err:
            logger.warning("skipping checkpoint %s: %s", path, err)
            continue
        # latest.pth is written before any other file and the numbered ones are tried newest
        # first, so the first file that loads is the newest state.
        return path, ckpt
    return None, None
