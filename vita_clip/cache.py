"""On-disk cache of class text features, so a label set is encoded once per text side.

The key hashes everything the features depend on: the text tower's weights, the learned context
(when used), the class names, the prompt settings and the dtype. Files are written atomically
(temp + fsync + rename) and read with ``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Optional, Sequence

import torch

from engine.checkpoint import atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = ["zero_shot_classifier", "text_cache_key", "default_cache_dir"]

CACHE_VERSION = 1


def default_cache_dir(cfg=None) -> str:
    """MODEL.VITA.TEXT_CACHE_DIR, else OUTPUT/text_cache."""
    if cfg is not None:
        return cfg.MODEL.VITA.TEXT_CACHE_DIR or os.path.join(cfg.OUTPUT, "text_cache")
    return os.path.join("output", "text_cache")


def _hash_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    data = tensor.detach().to("cpu").contiguous()
    digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())


def text_cache_key(model, class_names: Sequence[str]) -> str:
    """Hex digest identifying the features model.encode_text_features(class_names) returns."""
    digest = hashlib.sha256()
    mode = model.text_prompt_mode(class_names)
    digest.update(json.dumps({
        "version": CACHE_VERSION, "mode": mode, "class_names": [str(n) for n in class_names],
        "prompt": model.text_prompt_settings, "context_length": model.text_context_length,
    }, sort_keys=True).encode())
    for name, tensor in sorted(model.textual.state_dict().items()):
        _hash_tensor(digest, name, tensor)
    if mode != "class-only":
        learner = model.prompt_learner
        _hash_tensor(digest, "ctx", learner.ctx)
        if mode == "learned":
            _hash_tensor(digest, "token_prefix", learner.token_prefix)
            _hash_tensor(digest, "token_suffix", learner.token_suffix)
    return digest.hexdigest()


def zero_shot_classifier(model, class_names: Sequence[str],
                         cache_dir: Optional[str] = None) -> torch.Tensor:
    """Text features [C, E] (un-normalised, on the model's device and dtype) for `class_names`.

    Computed once with ``model.encode_text_features`` and stored in
    ``cache_dir/text_features_<key>.pt``; later calls with the same text weights, names and
    prompt settings load the file instead. ``cache_dir=None`` (or "") disables the disk cache.
    """
    class_names = [str(n) for n in class_names]
    if not class_names:
        raise ValueError("zero_shot_classifier needs at least one class name")
    param = next(model.parameters())
    path = None
    if cache_dir:
        key = text_cache_key(model, class_names)
        path = os.path.join(cache_dir, f"text_features_{key[:32]}.pt")
        if os.path.isfile(path):
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
                if data.get("key") == key and data.get("class_names") == class_names:
                    logger.info("text features for %d classes loaded from %s", len(class_names),
                                path)
                    return data["features"].to(device=param.device, dtype=param.dtype)
                logger.warning("%s does not match its key; recomputing", path)
            except Exception as err:  # a damaged cache file is recomputed, never trusted
                logger.warning("cannot read text cache %s (%s); recomputing", path, err)
    was_training = model.training
    model.eval()
    try:
        features = model.encode_text_features(class_names)
    finally:
        model.train(was_training)
    if path is not None:
        atomic_torch_save({"key": key, "class_names": class_names,
                      "features": features.detach().to("cpu")}, path)
        logger.info("text features for %d classes cached in %s", len(class_names), path)
    return features.to(device=param.device, dtype=param.dtype)
