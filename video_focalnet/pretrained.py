"""Released Video-FocalNet weights as timm pretrained tags (``video_focalnet_tiny.k400`` ...).

``timm.create_model("video_focalnet_tiny", pretrained=True)`` loads the released Kinetics-400
checkpoint; ``"video_focalnet_base.ssv2"`` and the other tags load the other releases. Each tag's
pretrained config names its model-zoo entry (``url="zoo:video_focalnet_tiny_k400"``). This
package never downloads: it asks a *weights locator* ``locator(zoo_name) -> path`` for the file.
The engine's model zoo installs one (``import engine.zoo``, which the tools and
``engine.build`` do) that downloads and verifies on demand. Without it the file is looked for
where the zoo keeps its files (``$VIDEO_WEIGHTS_DIR``, else ``~/.cache/video-recognition/weights``)
and a missing file names the command that downloads it. A ``file`` given by the caller
(``pretrained_cfg_overlay=dict(file=PATH)``) is used as it is.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

__all__ = ["RELEASED", "ZOO_URL_SCHEME", "released_cfgs", "set_weights_locator", "locate_weights",
           "with_released_weights", "drop_loaded_state_dict"]

ZOO_URL_SCHEME = "zoo:"
# timm tag -> (model-zoo name, classes); the first tag of each size is its default.
RELEASED = {
    "video_focalnet_tiny.k400": ("video_focalnet_tiny_k400", 400),
    "video_focalnet_small.k400": ("video_focalnet_small_k400", 400),
    "video_focalnet_base.k400": ("video_focalnet_base_k400", 400),
    "video_focalnet_base.k600": ("video_focalnet_base_k600", 600),
    "video_focalnet_base.ssv2": ("video_focalnet_base_ssv2", 174),
    "video_focalnet_base.diving48": ("video_focalnet_base_diving48", 48),
    "video_focalnet_base.activitynet": ("video_focalnet_base_activitynet", 200),
}
# The zoo's cache folder and file names (engine/zoo.py; a test keeps the two in step).
_CACHE_ENV, _CACHE_DEFAULT = "VIDEO_WEIGHTS_DIR", os.path.join("~", ".cache", "video-recognition",
                                                               "weights")

_locator: Optional[Callable[[str], str]] = None


def released_cfgs(make_cfg: Callable[..., dict]) -> dict:
    """``{tag: cfg}`` for generate_default_cfgs; ``make_cfg`` is the package's base cfg."""
    return {tag: make_cfg(url=ZOO_URL_SCHEME + zoo_name, num_classes=classes)
            for tag, (zoo_name, classes) in RELEASED.items()}


def set_weights_locator(locator: Optional[Callable[[str], str]]) -> None:
    """Install ``locator(zoo_name) -> local path`` (None removes it)."""
    global _locator
    _locator = locator


def locate_weights(zoo_name: str) -> str:
    """The local file of a released checkpoint (through the locator when one is installed)."""
    if _locator is not None:
        return _locator(zoo_name)
    path = os.path.join(os.path.expanduser(os.environ.get(_CACHE_ENV) or _CACHE_DEFAULT),
                        f"{zoo_name}.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"released weights {zoo_name} are not at {path}: download them with "
            f"`python tools/download_weights.py {zoo_name}`, or `import engine.zoo` before "
            f"timm.create_model(..., pretrained=True) to download on demand")
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
