"""Loading weights into Video-FocalNet: released video checkpoints, ImageNet FocalNet 2-D weights
(microsoft/FocalNet key format and timm ``focalnet_*`` format), with inflation where a 2-D tensor
meets a 3-D one.

Inflation rule (one rule for every inflated tensor): a 2-D kernel ``(O, I, kh, kw)`` becomes
``(O, I, t, kh, kw)`` by repeating it ``t`` times along time and dividing by ``t`` (temporal
average), so a clip of identical frames gives the 2-D response. It applies to the tubelet stem
(``patch_embed.proj``, t = tubelet size, as the reference) and to the depthwise kernels of the
``joint`` design (``focal_layers.{l}.0``, t = k_l).

Every file is read by the project's one safe loader (``common.safe_load``: ``torch.load`` with
``weights_only=True``; official training checkpoints pickle a yacs ``CfgNode`` under ``config``,
which it reads as plain data, no code runs); a file it cannot use raises its CheckpointError.
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models import clean_state_dict

from common.safe_load import CheckpointError, load_error, safe_torch_load, with_prefix

logger = logging.getLogger(__name__)

__all__ = ["convert_timm_focalnet", "checkpoint_filter_fn", "load_pretrained",
           "load_video_checkpoint", "inflate_2d_to_3d"]

_HEAD_KEYS = ("head.weight", "head.bias")


def read_state_dict(path: str, key: str | None = None) -> dict[str, torch.Tensor]:
    """The model state dict in a FocalNet weight file: ``{"model": ...}`` (official, microsoft
    and this project's checkpoints), ``{"state_dict": ...}`` or a bare state dict (timm), with
    DDP / torch.compile prefixes removed. ``key`` names the config key of ``path`` for errors."""
    where = f"{key} = {path!r}" if key else repr(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {where}. Download it or fix the path.")
    what = f"{key}: " if key else ""
    if str(path).endswith(".safetensors"):  # timm's format on the Hugging Face Hub
        from safetensors.torch import load_file
        try:
            ckpt = load_file(path, device="cpu")
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file
            raise load_error(path, err, what) from err
    else:  # the project's one safe loader: its CheckpointError, in its one wording
        try:
            ckpt = safe_torch_load(path)
        except CheckpointError as err:
            raise with_prefix(err, what) from err
    for wrapper in ("model", "state_dict"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(wrapper), dict):
            ckpt = ckpt[wrapper]
            break
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"{where}: expected a state dict of tensors (optionally under 'model')")
    return clean_state_dict(ckpt)


def _is_timm_focalnet(state_dict: dict) -> bool:
    return "stem.proj.weight" in state_dict


def convert_timm_focalnet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``focalnet_*`` names/shapes -> official (microsoft / Video-FocalNet) ones.

    timm runs channels-first with 1x1 convolutions where the reference has linear layers, puts
    the downsampler at the start of stages 1..3, and renames layer scales and post-norms.
    """
    out = {}
    for name, value in state_dict.items():
        new = name.replace("stem.", "patch_embed.", 1) if name.startswith("stem.") else name
        new = re.sub(r"^layers\.(\d+)\.downsample\.",
                     lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", new)
        new = re.sub(r"\.ls([12])\.gamma$", r".gamma_\1", new)
        new = re.sub(r"\.norm([12])_post\.", r".norm\1.", new)
        new = new.replace(".modulation.norm.", ".modulation.ln.")
        new = new.replace("head.fc.", "head.")
        if re.search(r"\.(modulation\.f|modulation\.proj|mlp\.fc1|mlp\.fc2)\.weight$", new) \
                and value.ndim == 4:
            value = value.flatten(1)  # 1x1 conv -> linear
        out[new] = value
    return out


def inflate_2d_to_3d(weight: torch.Tensor, time: int) -> torch.Tensor:
    """``(O, I, kh, kw)`` -> ``(O, I, time, kh, kw)``: repeated over time, divided by ``time``."""
    return weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


def _inflatable(src: torch.Tensor, dst_shape: torch.Size) -> bool:
    return (src.ndim == 4 and len(dst_shape) == 5
            and tuple(src.shape) == tuple(dst_shape[:2]) + tuple(dst_shape[3:]))


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict[str, torch.Tensor]:
    """timm-style filter: any supported checkpoint -> tensors named and shaped for ``model``.

    Unwraps ``{"model": ...}``, maps timm names, inflates 2-D kernels where the model has 3-D
    ones and drops a head of another size. Keys the model lacks are kept (a strict load reports
    them).
    """
    if isinstance(state_dict.get("model"), dict):
        state_dict = state_dict["model"]
    if _is_timm_focalnet(state_dict):
        state_dict = convert_timm_focalnet(state_dict)
    target = model.state_dict()
    out = {}
    for name, value in state_dict.items():
        if name in target and _inflatable(value, target[name].shape):
            value = inflate_2d_to_3d(value, target[name].shape[2])
        if name in _HEAD_KEYS and name in target and value.shape != target[name].shape:
            continue
        out[name] = value
    return out


def _pattern(name: str) -> str:
    return re.sub(r"\.\d+\.", ".*.", re.sub(r"\.\d+\.", ".*.", name))


def _summarise(names: list[str]) -> str:
    counts = Counter(_pattern(n) for n in names)
    return ", ".join(f"{p} (x{c})" if c > 1 else p for p, c in sorted(counts.items())) or "none"


def load_pretrained(model: nn.Module, path: str, key: str | None = None) -> dict[str, list[str]]:
    """Initialise ``model`` from a 2-D FocalNet or a video checkpoint (reference recipe).

    * tensors with the same name and shape are copied; 2-D kernels meeting 3-D ones are inflated;
    * keys only the video model has (``*_temporal``) keep their fresh initialisation;
    * the head: from a 2-D (ImageNet) source it is always re-initialised, weight **and** bias
      trunc-normal(0.02) as the reference does; from a video source it is copied when its shape
      matches and re-initialised otherwise.
    Shape mismatches and checkpoint keys the model has no place for raise an error.
    Returns ``{"copied", "inflated", "new", "head"}`` key lists and logs a summary.
    """
    source = read_state_dict(path, key)
    fmt = "timm FocalNet" if _is_timm_focalnet(source) else None
    if fmt:
        source = convert_timm_focalnet(source)
    is_video = any("_temporal" in k for k in source) or any(v.ndim == 5 for v in source.values())
    fmt = fmt or ("Video-FocalNet" if is_video else "FocalNet (2-D)")
    target = model.state_dict()
    summary: dict[str, list[str]] = {"copied": [], "inflated": [], "new": [], "head": []}
    mismatched = []
    for name, dst in target.items():
        src = source.get(name)
        if name in _HEAD_KEYS and (not is_video or src is None or src.shape != dst.shape):
            summary["head"].append(name)
            continue
        if src is None:
            summary["new"].append(name)
        elif src.shape == dst.shape:
            target[name] = src.to(dst.dtype)
            summary["copied"].append(name)
        elif _inflatable(src, dst.shape):
            target[name] = inflate_2d_to_3d(src, dst.shape[2]).to(dst.dtype)
            summary["inflated"].append(name)
        else:
            mismatched.append(f"{name}: checkpoint {tuple(src.shape)} vs model {tuple(dst.shape)}")
    unexpected = [k for k in source if k not in target]
    where = f"{key} = {path!r}" if key else repr(path)
    if mismatched or unexpected:
        raise ValueError(
            f"{where} ({fmt}) does not fit this model: "
            + (f"shape mismatches: {'; '.join(mismatched[:8])}. " if mismatched else "")
            + (f"keys the model lacks: {_summarise(unexpected)}. " if unexpected else "")
            + "Check MODEL.TYPE / MODEL.FOCAL.* (levels, windows, ST_DESIGN) against the weights.")
    model.load_state_dict(target, strict=True)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if summary["head"] and isinstance(head, nn.Linear):
        trunc_normal_(head.weight, std=0.02)
        trunc_normal_(head.bias, std=0.02)
    logger.info("loaded %s weights from %s: copied %d tensors, inflated %d [%s], newly "
                "initialised %d [%s], head re-initialised: %s", fmt, where, len(summary["copied"]),
                len(summary["inflated"]), _summarise(summary["inflated"]), len(summary["new"]),
                _summarise(summary["new"]), bool(summary["head"]))
    return summary


def load_video_checkpoint(model: nn.Module, path: str) -> None:
    """Load a released / trained Video-FocalNet checkpoint (``{"model": state_dict}``) strictly."""
    state_dict = read_state_dict(path)
    if _is_timm_focalnet(state_dict):
        state_dict = convert_timm_focalnet(state_dict)
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
                  for k, v in state_dict.items() if k in target and v.shape != target[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"{path!r} is not a checkpoint of this model: missing "
                         f"{_summarise(missing)}; unexpected {_summarise(unexpected)}; shape "
                         f"mismatches {'; '.join(mismatched[:8]) or 'none'}. Check MODEL.TYPE and "
                         "MODEL.FOCAL.* (ST_DESIGN, levels, windows, TUBELET_SIZE); for 2-D "
                         "ImageNet weights use TRAIN.PRETRAINED_PATH (load_pretrained).")
    model.load_state_dict(state_dict, strict=True)
