"""Which model packages exist: MODEL.TYPE name -> the model family that builds it.

A model package describes itself with one object (its ``FAMILY``) and never imports the engine;
the engine finds the installed families through the ``video_recognition.models`` entry points of
the installed distributions (``setup.py``), and a test or a user can add one at run time with
``register_model_family``. The engine asks the family for everything model-specific:

========================  ==========================================================================
``name``                  package name, e.g. ``"video_focalnet"``
``model_types``           the ``MODEL.TYPE`` values it builds (first one = canonical)
``add_config(cfg)``       adds its keys (with defaults) to the config tree, e.g. ``MODEL.FOCAL``
``validate(cfg)``         raises ``ValueError("key MODEL.X: what is wrong and what to do")``
``build(cfg, names)``     the model for a config and its class names (None: not needed/known)
``normalization(cfg)``    ``(mean, std)`` on 0..1 RGB that the model was trained with
``input_pipeline(cfg)``   ``{config key: value}``: the model's own input pipeline (decoder, sampling,
                          resize rounding, test resize and crops, augmentation order), which
                          ``load_cfg`` applies to every such key a config does not set itself
``example_input(cfg, batch_size)``  a float video (B, T, C, H, W) for FLOP counts and benchmarks
``benchmark_models(name, **kw)``    ``{"model": nn.Module, "input": tensor}`` for a timm-style
                          variant name (``video_focalnet_tiny``, ``vita_clip_b16``)
``benchmark_names``       the variant names ``benchmark_models`` accepts
``visual_taps(model, method, stage)``  optional: ``{name: (module, to_maps)}``, the modules whose
                          forward output a visualisation hooks (``method`` modulator | gradcam;
                          ``stage`` None = the last); ``to_maps(output)`` -> (B*T, h, w, C)
========================  ==========================================================================

Optional attributes, used when present:

========================  ==========================================================================
``weight_keys``           config keys holding weight files; the engine resolves model-zoo names
                          in them to cached files before ``build`` (engine/zoo.py)
``released_weights``      the package's released files (``common.weights.Weights``), declared
                          beside the model; the model zoo (engine/zoo.py) serves them by name
``designs``, ``design_of(cfg)``  the design options a benchmark / FLOP table can vary
========================  ==========================================================================

With ``EVAL_MODE`` set, ``build`` reads no weight file: the weights come from a checkpoint.

Kept deliberately small: one dict, no decorators, no inheritance (PySlowFast's MODEL_REGISTRY).
"""
from __future__ import annotations

import logging
from importlib import metadata

logger = logging.getLogger(__name__)

__all__ = ["ENTRY_POINT_GROUP", "register_model_family", "model_family", "model_families",
           "model_types", "family_for_variant"]

ENTRY_POINT_GROUP = "video_recognition.models"

_FAMILIES: dict[str, object] = {}  # family.name -> family
_BY_TYPE: dict[str, object] = {}  # MODEL.TYPE -> family
_discovered = False


def register_model_family(family) -> None:
    """Make a family's MODEL.TYPE names buildable (idempotent for the same family object)."""
    for attr in ("name", "model_types", "add_config", "validate", "build", "normalization",
                 "input_pipeline", "example_input"):
        if not hasattr(family, attr):
            raise TypeError(f"model family {family!r} has no {attr!r}; see engine/registry.py")
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
    for family in model_families():
        if name in getattr(family, "benchmark_names", ()):
            return family
    known = sorted(n for f in model_families() for n in getattr(f, "benchmark_names", ()))
    raise KeyError(f"unknown model {name!r}; known: {', '.join(known)}")
