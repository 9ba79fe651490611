"""Reading config files and overrides into a config tree: YAML with ``_BASE_``/``BASE``
inheritance (duplicate keys refused), ``KEY VALUE`` overrides, values checked against the
defaults' types, the bundled copies of the released configs, and the origin of every value
(which file or override set it) for the error messages of validation.
"""
from __future__ import annotations

import ast
import difflib
import functools
import json
import logging
import os
import urllib.parse
from importlib import metadata
from typing import Sequence

import yaml
from yacs.config import CfgNode as CN

from common.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["DISTRIBUTION", "find_config_file", "merge_file", "merge_opts", "where"]

DISTRIBUTION = "video-recognition"  # setup.py name; datasets.DISTRIBUTION marks our package

# String keys whose YAML spelling `off` (or `on`) arrives as a bool.
_BOOL_WORDS = {"TRAIN.AMP": {False: "off"},
               "TRAIN.COMPILE": {False: "off", True: "default"},
               "TEST.COMPILE": {False: "off", True: "default"}}

# Integer keys that also take a fraction (a fractional number of epochs is a number of updates).
_FRACTIONAL_KEYS = {"TRAIN.WARMUP_EPOCHS", "TRAIN.LR_SCHEDULER.DECAY_EPOCHS"}


def where(source: str, key: str) -> str:
    return f"{source}: key {key}" if source else f"key {key}"


def _closest(key: str, node: CN, prefix: str) -> str:
    candidates = [prefix + k for k in node.keys()]
    full = prefix + key
    match = difflib.get_close_matches(full, candidates, n=1, cutoff=0.5)
    if not match:  # also compare against every key of the tree for a misplaced key
        match = difflib.get_close_matches(key, list(node.keys()), n=1, cutoff=0.5)
        match = [prefix + m for m in match]
    return f" Did you mean {match[0]}?" if match else ""


def _coerce(value, default, key: str, source: str):
    """Check `value` against the default's type, converting what YAML or the command line give."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(default, float):
                return float(value)
            if float(value).is_integer():
                return int(value)
            if key in _FRACTIONAL_KEYS:
                return float(value)
            raise ConfigError(f"{where(source, key)}: expected a whole number, got {value!r}; "
                              f"use e.g. {max(1, round(value))}")
        if isinstance(value, str):
            try:
                return float(value) if isinstance(default, float) else int(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, bool) and value in _BOOL_WORDS.get(key, {}):
            return _BOOL_WORDS[key][value]  # YAML 1.1 reads a bare `off` as False
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    raise ConfigError(f"{where(source, key)}: expected {type(default).__name__} "
                      f"(default {default!r}), got {type(value).__name__} {value!r}")


def _merge_dict(cfg: CN, data: dict, source: str, prefix: str = "",
                origins: dict | None = None) -> None:
    """Merge ``data`` into ``cfg``; ``origins`` (when given) records ``full key -> source`` for
    every value set, so that validation names the file or override a bad value came from."""
    for key, value in data.items():
        full = prefix + key
        if origins is not None and not isinstance(value, dict):
            origins[full] = source
        if key not in cfg:
            if cfg.is_new_allowed():
                cfg[key] = CN(value, new_allowed=True) if isinstance(value, dict) else value
                continue
            raise ConfigError(f"{source or 'override'}: unknown config key {full}."
                              f"{_closest(key, cfg, prefix)} Remove it or fix its spelling.")
        default = cfg[key]
        if isinstance(default, CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{where(source, full)}: is a section; give a mapping of "
                                  f"its keys, not {value!r}")
            _merge_dict(default, value, source, full + ".", origins)
        else:
            cfg[key] = _coerce(value, default, full, source)


@functools.lru_cache(maxsize=1)
def _bundled_config_dirs() -> tuple:
    """Where the released configs (configs/**/*.yaml) are installed: ``engine/configs`` in a
    wheel; for an editable install, the ``configs`` folder of the source tree it points at
    (PEP 610 ``direct_url.json``)."""
    dirs = []
    installed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
    if os.path.isdir(installed):
        dirs.append(installed)
    for dist in metadata.distributions(name=DISTRIBUTION):  # also a build's stray egg-info
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file://"):
            source = os.path.join(urllib.parse.unquote(url["url"][len("file://"):]), "configs")
            if os.path.isdir(source) and source not in dirs:
                dirs.append(source)
    return tuple(dirs)


def find_config_file(path: str) -> str:
    """``path`` itself when it exists (relative to the working directory); else the released
    config it names, ``configs/<rest>`` (or ``<rest>``) under the installed configs; else
    ``path`` unchanged."""
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    rest = path.replace("\\", "/")
    while rest.startswith("./"):
        rest = rest[2:]
    rest = rest[len("configs/"):] if rest.startswith("configs/") else rest
    for directory in _bundled_config_dirs():
        candidate = os.path.join(directory, *rest.split("/"))
        if os.path.isfile(candidate):
            return candidate
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last
    one silently, so a repeated section would drop the first one's keys)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: yaml reports it itself
                continue
            if first != key_node.start_mark.line + 1:
                raise ConfigError(f"{self.name} line {key_node.start_mark.line + 1}: key {key!r} "
                                  f"is given twice in one mapping (first on line {first}); merge "
                                  f"the two into one")
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> dict:
    if os.path.isdir(path):
        raise ConfigError(f"config file {path} is a directory; give the path of a YAML file")
    if not os.path.isfile(path):
        bundled = ", ".join(_bundled_config_dirs()) or "none installed"
        raise ConfigError(f"config file not found: {path}. Check the --cfg path (relative paths "
                          f"are taken from {os.getcwd()}, then from the released configs: "
                          f"{bundled}).")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (a binary file, or not UTF-8 text); "
                          f"give a .yaml file of config keys") from None
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from err
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; give at least MODEL.TYPE and the "
                          f"DATA keys (or `_BASE_: other.yaml`)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got "
                          f"{type(data).__name__}")
    return data


def merge_file(cfg: CN, path: str, seen: tuple = (), origins: dict | None = None) -> None:
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: circular _BASE_ inheritance through {' -> '.join(seen)}")
    data = _read_yaml(path)
    bases = []
    for base_key in ("_BASE_", "BASE"):
        value = data.pop(base_key, None)
        if value:
            bases.extend([value] if isinstance(value, str) else list(value))
    for base in bases:
        if not base:
            continue
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: base config {base!r} not found (looked at {base_path})")
        merge_file(cfg, base_path, seen + (path,), origins)
    _map_legacy_keys(data, path)
    _merge_dict(cfg, data, path, origins=origins)


def _map_legacy_keys(data: dict, source: str) -> None:
    """Keys that only made sense for the reference's tooling, mapped to ours with a notice."""
    level = data.get("AMP_OPT_LEVEL")
    if level:
        amp = "off" if str(level).upper() == "O0" else "fp16"
        data.setdefault("TRAIN", {}).setdefault("AMP", amp)
        logger.warning("%s: AMP_OPT_LEVEL %s (apex) is mapped to TRAIN.AMP %s (torch.amp)",
                       source or "override", level, amp)


def merge_opts(cfg: CN, opts: Sequence[str], source: str = "--opts",
               origins: dict | None = None) -> None:
    """Merge `KEY VALUE KEY VALUE ...` overrides (values parsed as Python/YAML literals)."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f"{source}: overrides come in KEY VALUE pairs; got an odd number "
                          f"({len(opts)}): {opts}")
    for key, raw in zip(opts[0::2], opts[1::2]):
        value = raw
        if isinstance(raw, str):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            if value is None and raw.strip().lower() not in ("null", "none", "~"):
                value = raw  # `--opts KEY ""` means an empty string, not YAML's null
            if isinstance(value, str):  # keep "1e-4" style numbers working
                try:
                    value = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    value = raw
        nested: dict = {}
        cursor = nested
        parts = key.split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        if key == "AMP_OPT_LEVEL":
            _map_legacy_keys(nested, source)
            nested.get("TRAIN", {}).pop("AMP", None)
            cfg.TRAIN.AMP = "off" if str(value).upper() == "O0" else "fp16"
        _merge_dict(cfg, nested, source, origins=origins)


