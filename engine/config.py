"""One config tree for every model, dataset and run (YACS): the public API.

``get_cfg()`` returns a fresh mutable tree; ``load_cfg(path, opts)`` merges a YAML file (with
``_BASE_``/``BASE`` inheritance) and ``KEY VALUE`` overrides, fills what the model family
decides (its input pipeline, its normalisation), validates and freezes. Split by concern, as
PySlowFast's config is:

- ``engine/config_defaults.py``: the default tree, one comment per key;
- ``engine/config_merge.py``: YAML files, ``--opts`` overrides, bundled-file lookup;
- ``engine/config_checks.py``: validation, the common checks and the model family's.
"""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

from yacs.config import CfgNode as CN

from common.errors import ConfigError

from .config_checks import validate_cfg
from .config_defaults import COMPILE_MODES, default_tree
from .config_merge import find_config_file, merge_file, merge_opts

logger = logging.getLogger(__name__)

__all__ = ["CN", "ConfigError", "COMPILE_MODES", "get_cfg", "load_cfg", "merge_opts",
           "validate_cfg", "find_config_file", "fill_data_normalization", "fill_input_pipeline"]


def get_cfg() -> CN:
    """A fresh, mutable copy of the default config, with every registered model family's keys."""
    from .registry import model_families
    cfg = default_tree()
    for family in model_families():
        family.add_config(cfg)
    return cfg


def fill_data_normalization(cfg: CN) -> None:
    """Empty DATA.MEAN / DATA.STD <- the model family's own statistics (CLIP's for Vita-CLIP,
    ImageNet's for Video-FocalNet), so the data layer only ever reads DATA.MEAN / DATA.STD."""
    from .registry import model_family
    if len(cfg.DATA.MEAN) and len(cfg.DATA.STD):
        return
    mean, std = model_family(cfg.MODEL.TYPE).normalization(cfg)
    if not len(cfg.DATA.MEAN):
        cfg.DATA.MEAN = [float(v) for v in mean]
    if not len(cfg.DATA.STD):
        cfg.DATA.STD = [float(v) for v in std]


def fill_input_pipeline(cfg: CN, origins: dict) -> None:
    """The model family's official input pipeline (decoder, sampling, resize, crops, augmentation
    order: its ``input_pipeline(cfg)``) for every such key the config file or overrides did not
    set (``origins``): no model runs on another model's rules. An unknown MODEL.TYPE is left to
    validation."""
    from .registry import model_family
    try:
        family = model_family(cfg.MODEL.TYPE)
    except KeyError:
        return
    for key, value in family.input_pipeline(cfg).items():
        if key in origins:
            continue
        node = cfg
        *sections, name = key.split(".")
        for section in sections:
            node = node[section]
        if name not in node:
            raise KeyError(f"model family {family.name}: input_pipeline names {key}, which is not "
                           f"a config key")
        node[name] = value


def load_cfg(path: str | None = None, opts: Iterable[str] = (), freeze: bool = True,
             layers: Sequence[tuple[str, Sequence]] = ()) -> CN:
    """Defaults <- YAML file (with bases) <- KEY VALUE overrides <- each ``(source, opts)`` of
    ``layers`` (e.g. an ablation variant's own keys, named in messages); validated; frozen.

    Every error names the file or override the offending value came from."""
    cfg = get_cfg()
    origins: dict = {}
    if path:
        path = find_config_file(path)
        merge_file(cfg, path, origins=origins)
    merge_opts(cfg, list(opts or []), origins=origins)
    for source, layer_opts in layers:
        merge_opts(cfg, list(layer_opts or []), source=source, origins=origins)
    _follow_sizes(cfg, origins)
    fill_input_pipeline(cfg, origins)
    validate_cfg(cfg, source=path or "", origins=origins)
    fill_data_normalization(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def _follow_sizes(cfg: CN, origins: dict) -> None:
    """DATA.IMG_SIZE (what the model is built for) and DATA.INPUT_SIZE (what the data pipeline
    crops): when a config sets one of them and not the other, the other follows it; when it sets
    both to different values, that is said once (it is allowed: a convolutional model runs at
    either size, only slower or on other crops than it was built for)."""
    img, crop = "DATA.IMG_SIZE" in origins, "DATA.INPUT_SIZE" in origins
    if img and not crop:
        cfg.DATA.INPUT_SIZE = cfg.DATA.IMG_SIZE
    elif crop and not img:
        cfg.DATA.IMG_SIZE = cfg.DATA.INPUT_SIZE
    elif img and crop and cfg.DATA.IMG_SIZE != cfg.DATA.INPUT_SIZE:
        logger.warning("DATA.IMG_SIZE %s (%s) and DATA.INPUT_SIZE %s (%s) differ: the model is "
                       "built for %s-pixel frames and fed %s-pixel crops", cfg.DATA.IMG_SIZE,
                       origins["DATA.IMG_SIZE"] or "defaults", cfg.DATA.INPUT_SIZE,
                       origins["DATA.INPUT_SIZE"] or "defaults", cfg.DATA.IMG_SIZE,
                       cfg.DATA.INPUT_SIZE)
