"""Classifiers made of class text features, and their on-disk cache.

A model that scores videos against text (it has ``encode_text(class_names) -> [C, E]``, e.g.
Vita-CLIP) can classify any label set: encode the names once, then score every video against
those features (``model(video, text_features=...)``). Encoding a large label set through a text
tower is slow, so ``zero_shot_classifier`` keeps the result in ``cache_dir``, one file per
(text weights and their dtype, class names, prompt settings).

What the key covers is what the model says the features depend on (both optional, duck typed):
``model.text_state_dict(class_names)`` -- the tensors (default: the whole state dict) -- and
``model.text_config`` -- JSON-able settings that change the result without changing a tensor.
Files are written atomically and read with ``weights_only=True``; a damaged or mismatching file
is recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Optional, Sequence

import torch

from common.fileio import atomic_torch_save
from common.safe_load import safe_torch_load

from .contract import TextEncoder, TextEncoderDetails

logger = logging.getLogger(__name__)

__all__ = ["zero_shot_classifier", "text_cache_key", "CACHE_VERSION"]

CACHE_VERSION = 2  # bump when the file layout or the key's contents change


def _hash_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    data = tensor.detach().to("cpu").contiguous()
    digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())


def text_cache_key(model, class_names: Sequence[str]) -> str:
    """Hex sha256 identifying what ``model.encode_text(class_names)`` returns."""
    class_names = [str(n) for n in class_names]
    details = isinstance(model, TextEncoderDetails)
    tensors = model.text_state_dict(class_names) if details else model.state_dict()
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "version": CACHE_VERSION, "model": type(model).__qualname__,
        "class_names": class_names, "config": model.text_config if details else None,
    }, sort_keys=True).encode())
    for name, tensor in sorted(tensors.items()):
        _hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def _read_cached(path: str, key: str, class_names: list) -> Optional[torch.Tensor]:
    try:
        data = safe_torch_load(path)
    except Exception as err:  # a damaged cache file is recomputed, never trusted
        logger.warning("cannot read text cache %s (%s); recomputing", path, err)
        return None
    if not isinstance(data, dict) or data.get("key") != key or \
            data.get("class_names") != class_names:
        logger.warning("%s does not match its key; recomputing", path)
        return None
    return data["features"]


def zero_shot_classifier(model, class_names: Sequence[str],
                         cache_dir: Optional[str] = None) -> torch.Tensor:
    """Text features [C, E] (un-normalised, on the model's device and dtype) for ``class_names``.

    Computed once with ``model.encode_text(class_names)`` (eval mode, no grad) and stored in
    ``cache_dir/text_features_<key>.pt``; later calls with the same text weights, names and
    settings load the file instead. ``cache_dir`` None or "" disables the disk cache.
    """
    class_names = [str(n) for n in class_names]
    if not class_names:
        raise ValueError("zero_shot_classifier needs at least one class name")
    if not isinstance(model, TextEncoder):
        raise ValueError(f"{type(model).__name__} has no encode_text(class_names): it cannot "
                         f"classify by class names")
    param = next(model.parameters())
    path = key = None
    if cache_dir and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise NotADirectoryError(f"text cache folder {cache_dir} is a file, not a folder; give "
                                 f"--text-cache-dir (or MODEL.VITA.TEXT_CACHE_DIR) a folder")
    if cache_dir:
        key = text_cache_key(model, class_names)
        path = os.path.join(cache_dir, f"text_features_{key[:32]}.pt")
        if os.path.isfile(path):
            features = _read_cached(path, key, class_names)
            if features is not None:
                logger.info("text features for %d classes loaded from %s", len(class_names),
                            path)
                return features.to(device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features = model.encode_text(class_names)
    finally:
        model.train(was_training)
    if path is not None:
        atomic_torch_save({"key": key, "class_names": class_names,
                           "features": features.detach().to("cpu")}, path)
        logger.info("text features for %d classes cached in %s", len(class_names), path)
    return features.to(device=param.device, dtype=param.dtype)
