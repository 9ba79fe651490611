"""Video-FocalNet's released weights, declared once: the video checkpoints and the ImageNet
FocalNets they start from (``RELEASED_WEIGHTS``, ``common.weights.Weights``), and the timm
pretrained tags of the video checkpoints (``video_focalnet_tiny.k400`` ...).

Adding a released file is one entry here: the engine's model zoo serves every entry by name
(``tools/download_weights.py``, a name wherever a weights path goes), ``docs/model_zoo.md``'s
table is generated from it, and an entry with a ``timm_name`` becomes a timm tag.

``timm.create_model("video_focalnet_tiny", pretrained=True)`` loads the released Kinetics-400
checkpoint; ``"video_focalnet_base.ssv2"`` and the other tags load the other releases. This
package never downloads: the file is read from the zoo's cache folder (``$VIDEO_WEIGHTS_DIR``,
else ``~/.cache/video-recognition/weights``), whatever else was imported, and a missing file
names the command that downloads it (``python tools/download_weights.py NAME`` or
``engine.zoo.fetch(NAME)``). A ``file`` given by the caller
(``pretrained_cfg_overlay=dict(file=PATH)``) is used as it is.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from common.weights import Weights, google_drive_url, weights_dir

__all__ = ["RELEASED_WEIGHTS", "ZOO_URL_SCHEME", "released_cfgs", "locate_weights",
           "with_released_weights", "drop_loaded_state_dict"]

ZOO_URL_SCHEME = "zoo:"

_CONFIG = "configs/video_focalnet/{}.yaml"
_SIZES = {"tiny": "T", "small": "S", "base": "B"}
# dataset tag -> (config folder, title, classes)
_DATASETS = {"k400": ("kinetics400", "Kinetics-400", 400),
             "k600": ("kinetics600", "Kinetics-600", 600),
             "ssv2": ("ssv2", "Something-Something v2", 174),
             "diving48": ("diving48", "Diving-48", 48),
             "activitynet": ("activitynet", "ActivityNet v1.3", 200)}


def _video(size: str, dataset: str, drive_id: str, top1: str, params: str) -> Weights:
    """An official Video-FocalNet checkpoint (Google Drive), with its timm tag."""
    folder, title, classes = _DATASETS[dataset]
    name = f"video_focalnet_{size}_{dataset}"
    return Weights(
        name=name, file_name=f"{name}.pth", urls=(google_drive_url(drive_id),),
        what=f"Video-FocalNet-{_SIZES[size]} trained on {title} (official checkpoint)",
        key="--checkpoint",
        configs=(_CONFIG.format(f"{folder}/{size}"),),
        top1=top1, params=params, timm_name=f"video_focalnet_{size}.{dataset}",
        num_classes=classes)


def _imagenet(size: str, videos: tuple) -> tuple:
    """The ImageNet-1K FocalNet (SRF) that initialises a size: microsoft's file and timm's, with
    the configs of that size's video checkpoints (those that start from it)."""
    configs = tuple(config for w in videos if w.name.startswith(f"video_focalnet_{size}_")
                    for config in w.configs)
    letter = _SIZES[size]
    timm_repo = f"focalnet_{size}_srf.ms_in1k"
    return (
        Weights(name=f"focalnet_{size}_srf", file_name=f"focalnet_{size}_srf.pth",
                urls=("https://github.com/microsoft/FocalNet/releases/download/v1.0.0/"
                      f"focalnet_{size}_srf.pth",),
                what=f"FocalNet-{letter} (SRF), ImageNet-1K; initialises Video-FocalNet-{letter}",
                key="TRAIN.PRETRAINED_PATH", configs=configs),
        Weights(name=timm_repo, file_name=f"{timm_repo}.safetensors",
                urls=(f"https://huggingface.co/timm/{timm_repo}/resolve/main/model.safetensors",),
                what=f"the same FocalNet-{letter} (SRF) in timm's format (Hugging Face Hub)",
                key="TRAIN.PRETRAINED_PATH", configs=configs),
    )


# Published top-1 (official multi-view test) and parameters from the official README; no sha256
# is published for these files (the zoo records one at the first download).
_VIDEO_WEIGHTS = (
    _video("tiny", "k400", "1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP", "79.8", "49.6 M"),
    _video("small", "k400", "1gO4_tluuoR4mn2bSQRNyy9_wFCnUSiQ0", "81.4", "88.7 M"),
    _video("base", "k400", "1tc1AKKmvHN7Hzxpd53QsBIMQZmLH8ozX", "83.6", "157.4 M"),
    _video("base", "k600", "16u1dij3dde0KmaajiB5lAFy8FaRvQDmS", "86.7", "157.6 M"),
    _video("base", "ssv2", "1MIPLjMVDmYEY5jmJs8pRRIj4gKNVqETg", "71.1", "157.2 M"),
    _video("base", "diving48", "1MMZeDucN1cfC5MiTGIft8xNfo5358dA2", "90.8", "157.0 M"),
    _video("base", "activitynet", "1Zku86i9Ol1gabqBqf0h1vtL-_H5gglA3", "89.8", "157.2 M"),
)
RELEASED_WEIGHTS = (*_VIDEO_WEIGHTS,
                    *(w for size in _SIZES for w in _imagenet(size, _VIDEO_WEIGHTS)))


def released_cfgs(make_cfg: Callable[..., dict]) -> dict:
    """``{tag: cfg}`` for generate_default_cfgs, one per entry with a timm name (the first tag of
    each size is its default); ``make_cfg`` is the package's base cfg."""
    return {w.timm_name: make_cfg(url=ZOO_URL_SCHEME + w.name, num_classes=w.num_classes)
            for w in RELEASED_WEIGHTS if w.timm_name}


def locate_weights(zoo_name: str) -> str:
    """The cached file of a released checkpoint; FileNotFoundError naming the download command
    when it is not there."""
    entry = next(w for w in RELEASED_WEIGHTS if w.name == zoo_name)
    path = os.path.join(weights_dir(), entry.file_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"released weights {zoo_name} are not at {path}: download them first with "
            f"`python tools/download_weights.py {zoo_name}` (or engine.zoo.fetch({zoo_name!r}))")
    return path


def with_released_weights(variant: str, pretrained_cfg=None, overlay: Optional[dict] = None):
    """The resolved timm pretrained config, carrying the weights as an in-memory state dict.

    The checkpoint is read by this package's safe reader (official files pickle a yacs config,
    which timm's own weights-only loader refuses); timm then applies ``checkpoint_filter_fn``
    and its usual head handling.
    """
    from timm.models import resolve_pretrained_cfg

    from .checkpoint import read_state_dict
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=overlay)
    if cfg.state_dict is not None:
        return cfg
    if cfg.file:
        path = cfg.file
    elif isinstance(cfg.url, str) and cfg.url.startswith(ZOO_URL_SCHEME):
        path = locate_weights(cfg.url[len(ZOO_URL_SCHEME):])
    else:
        return cfg  # no released weights for this tag: timm says so
    state_dict = read_state_dict(path, key=f"{cfg.architecture}.{cfg.tag} pretrained weights")
    return dataclasses.replace(cfg, state_dict=state_dict, file=path)


def drop_loaded_state_dict(model) -> None:
    """Forget the state dict timm copied into ``model.pretrained_cfg`` (a second copy of every
    weight); ``file`` still says where the weights came from."""
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        cfg.pop("state_dict", None)
