"""Which model packages exist: MODEL.TYPE name -> the model family that builds it.

A model package describes itself with one object (its ``FAMILY``) and never imports the engine;
the engine finds the installed families through the ``video_recognition.models`` entry points of
the installed distributions (``setup.py``), and a test or a user can add one at run time with
``register_model_family``. What a family must have, and the optional capabilities of families and
models, are the typed protocols of ``engine/contract.py`` (``ModelFamily``, ``ReleasesWeights``,
``Benchmarkable``, ``Visualizable``, ``HasDesigns``); ``docs/architecture.md`` describes them.

With ``EVAL_MODE`` set, ``build`` reads no weight file: the weights come from a checkpoint.

Kept deliberately small: one dict, no decorators, no inheritance (PySlowFast's MODEL_REGISTRY).
"""
from __future__ import annotations

import logging
from importlib import metadata

from .contract import Benchmarkable, ModelFamily, missing_members

logger = logging.getLogger(__name__)

__all__ = ["ENTRY_POINT_GROUP", "register_model_family", "model_family", "model_families",
           "model_types", "family_for_variant"]

ENTRY_POINT_GROUP = "video_recognition.models"

_FAMILIES: dict[str, ModelFamily] = {}  # family.name -> family
_BY_TYPE: dict[str, ModelFamily] = {}  # MODEL.TYPE -> family
_discovered = False


def register_model_family(family) -> None:
    """Make a family's MODEL.TYPE names buildable (idempotent for the same family object)."""
    missing = missing_members(family, ModelFamily)
    if missing:
        raise TypeError(f"model family {family!r} has no {', '.join(map(repr, missing))}; see "
                        f"engine/contract.py (ModelFamily)")
    old = _FAMILIES.get(family.name)
    if old is not None and old is not family:
        for model_type in old.model_types:
            _BY_TYPE.pop(model_type, None)
    for model_type in family.model_types:
        owner = _BY_TYPE.get(model_type)
        if owner is not None and owner.name != family.name:
            raise ValueError(f"MODEL.TYPE {model_type!r} is claimed by both {owner.name} and "
                             f"{family.name}")
        _BY_TYPE[model_type] = family
    _FAMILIES[family.name] = family


def _discover() -> None:
    """Load the families that installed distributions announce (once per process)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            family = entry.load()
        except ImportError as err:  # a broken optional package must not hide the others
            logger.warning("model package %s could not be imported (%s); its MODEL.TYPE "
                           "names are unavailable", entry.value, err)
            continue
        if family.name not in _FAMILIES:
            register_model_family(family)
    if not _FAMILIES:
        raise RuntimeError("no model package is registered: install this project "
                           "(`pip install -e .` or `pip install .`) so that its "
                           f"'{ENTRY_POINT_GROUP}' entry points exist")


def model_families() -> list:
    """Every registered family, in registration order."""
    _discover()
    return list(_FAMILIES.values())


def model_types() -> tuple:
    """Every buildable MODEL.TYPE name."""
    _discover()
    return tuple(_BY_TYPE)


def model_family(model_type: str):
    """The family that builds ``model_type``; KeyError (with the known names) otherwise."""
    _discover()
    try:
        return _BY_TYPE[model_type]
    except KeyError:
        raise KeyError(f"unknown MODEL.TYPE {model_type!r}; known: "
                       f"{', '.join(sorted(_BY_TYPE))}") from None


def family_for_variant(name: str):
    """The family whose ``benchmark_names`` include a timm-style variant name."""
    measurable = [f for f in model_families() if isinstance(f, Benchmarkable)]
    for family in measurable:
        if name in family.benchmark_names:
            return family
    known = sorted(n for f in measurable for n in f.benchmark_names)
    raise KeyError(f"unknown model {name!r}; known: {', '.join(known)}")
