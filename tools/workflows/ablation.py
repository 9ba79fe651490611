"""Ablation files: a YAML list of named config variants, validated, for the experiment runner.

An ablation file is YAML with a top-level ``variants:`` list; every item has a ``name`` and
``opts``, a mapping of config overrides (dotted keys ``MODEL.FOCAL.ST_DESIGN: spatial`` or nested
sections ``MODEL: {FOCAL: {ST_DESIGN: spatial}}``). A variant may also name its own config file
with ``cfg`` (relative to the ablation file); otherwise the base config is used.

``tools/ablate.py`` runs them with ``tools.workflows.experiments.run_experiments`` (override
order, resuming, reports: see there).
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import yaml

from engine.config import ConfigError
from tools.workflows.experiments import Variant, flatten_opts, variant_cfg, variant_source

__all__ = ["load_ablation"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _parse_opts(raw, where: str) -> dict:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        try:
            return flatten_opts(raw)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from err
    if isinstance(raw, (list, tuple)):  # also accept the command-line form [KEY, VALUE, ...]
        if len(raw) % 2 or not all(isinstance(k, str) for k in raw[0::2]):
            raise ConfigError(f"{where}: `opts` as a list must be KEY, VALUE pairs; "
                              f"got {list(raw)!r}. Prefer a mapping `KEY: VALUE`.")
        return dict(zip(raw[0::2], raw[1::2]))
    raise ConfigError(f"{where}: `opts` must be a mapping of config keys to values, "
                      f"got {type(raw).__name__} {raw!r}")


def load_ablation(path: str, base_cfg: str | None = None, base_opts: Sequence = ()) -> list[Variant]:
    """Read and validate an ablation file; every variant's config is loaded once to check keys."""
    if not os.path.isfile(path):
        raise ConfigError(f"ablation file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from err
    if not isinstance(data, dict) or "variants" not in data:
        raise ConfigError(f"{path}: an ablation file needs a top-level `variants:` list, e.g.\n"
                          "variants:\n  - name: parallel\n    opts: {MODEL.FOCAL.ST_DESIGN: parallel}")
    extra = sorted(set(data) - {"variants", "description"})
    if extra:
        raise ConfigError(f"{path}: unknown top-level key(s) {extra}; allowed: variants, "
                          "description")
    items = data["variants"]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: `variants` must be a non-empty list")
    variants: list[Variant] = []
    seen: set = set()
    for index, item in enumerate(items):
        where = f"{path}: variant {index}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a mapping with `name` and `opts`, got {item!r}")
        unknown = sorted(set(item) - {"name", "opts", "cfg", "description"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: name, opts, cfg, "
                              "description")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"{where}: `name` must be a folder-safe string (letters, digits, "
                              f"_ . + -), got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}: duplicate variant name {name!r}")
        seen.add(name)
        where = f"{where} ({name})"
        opts = _parse_opts(item.get("opts"), where)
        cfg_file = item.get("cfg")
        if cfg_file is not None:
            if not isinstance(cfg_file, str):
                raise ConfigError(f"{where}: `cfg` must be a path, got {cfg_file!r}")
            if not os.path.isabs(cfg_file):
                cfg_file = os.path.join(os.path.dirname(os.path.abspath(path)), cfg_file)
        variant = Variant(name=name, opts=opts, cfg=cfg_file)
        if base_cfg is not None or cfg_file is not None:
            try:
                variant_cfg(variant, base_cfg, base_opts, output_dir="output/_check")
            except ConfigError as err:  # `where` names the variant already
                text = str(err)
                own = f"{variant_source(variant)}: "
                raise ConfigError(f"{where}: {text[len(own):] if text.startswith(own) else text}"
                                  ) from err
        variants.append(variant)
    return variants
