"""The contract between the engine and a model package, as typed protocols.

A model package implements these structurally: it never imports this module (models import
nothing of the engine), it only has the members. The engine and the tools test for an optional
capability with ``isinstance(obj, Protocol)`` (``typing.runtime_checkable``: the members exist),
never with ``getattr`` probes and never by model name. ``docs/architecture.md`` describes each
member; ``engine/registry.py`` checks a family against ``ModelFamily`` when it is registered.

A family (one object per package, ``<package>/family.py:FAMILY``):

- ``ModelFamily``: what every family has (config keys, validation, building, normalisation, an
  example input);
- ``HasWeightKeys``, ``ReleasesWeights``, ``Benchmarkable``, ``Visualizable``, ``HasDesigns``:
  optional.

A model (the ``nn.Module`` that ``build`` returns; it takes ``(B, T, C, H, W)`` video and returns
``(B, classes)`` logits):

- ``TextEncoder``: scores videos against class names (zero-shot, ``--labels``, the evaluator's
  once-per-run class features);
- ``VideoEncoder`` or ``TimmFeatures``: the pre-logit features that extract_features writes;
- ``NoWeightDecay``: the parameter names it keeps out of weight decay.
"""
from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn

__all__ = ["ModelFamily", "HasWeightKeys", "ReleasesWeights", "Benchmarkable", "Visualizable",
           "HasDesigns", "TextEncoder", "TextEncoderDetails", "VideoEncoder", "TimmFeatures", "NoWeightDecay",
           "NoWeightDecayKeywords", "missing_members"]


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class ModelFamily(Protocol):
    """What the engine needs from every model package."""

    name: str  # the package name, e.g. "video_focalnet"
    model_types: tuple  # the MODEL.TYPE values it builds (the first is the canonical one)

    def add_config(self, cfg) -> None:
        """Add the package's keys, with defaults and one-line comments, to the config tree."""

    def validate(self, cfg) -> None:
        """Raise common.errors.ConfigValueError(key, problem) for a value it cannot use."""

    def build(self, cfg, class_names: Optional[Sequence[str]] = None) -> nn.Module:
        """The model. With cfg.EVAL_MODE it reads no weight file (a checkpoint follows). A weight
        file named by key X that cannot be read raises common.safe_load's CheckpointError with
        "key X: " in front; weights that do not fit raise ConfigValueError(X, ...)."""

    def normalization(self, cfg) -> tuple:
        """(mean, std), three values each, on 0..1 RGB: what the model was trained with."""

    def input_pipeline(self, cfg) -> dict:
        """{config key: value}: the model's own input pipeline (decoder, sampling, resize
        rounding, test resize and crops, augmentation order), which load_cfg applies to every
        such key a config does not set itself."""

    def example_input(self, cfg, batch_size: int = 1) -> torch.Tensor:
        """A float video (B, T, C, H, W) for FLOP counts and benchmarks."""


@runtime_checkable
class HasWeightKeys(Protocol):
    """A family whose configs name weight files (initialisation, backbones)."""

    weight_keys: tuple  # config keys holding weight files: zoo names there become cached files


@runtime_checkable
class ReleasesWeights(Protocol):
    """A family with released weight files of its own."""

    released_weights: tuple  # common.weights.Weights records, declared beside the model


@runtime_checkable
class Benchmarkable(Protocol):
    """A family that tools/benchmark.py and tools/flops.py can measure by variant name."""

    benchmark_names: tuple  # timm-style variant names, e.g. "video_focalnet_tiny"

    def benchmark_models(self, name: str, **kwargs) -> dict:
        """{"model": nn.Module, "input": tensor} for a variant name."""


@runtime_checkable
class Visualizable(Protocol):
    """A family whose intermediate maps tools/visualize.py can draw (modulators, Grad-CAM)."""

    def visual_taps(self, model: nn.Module, method: str, stage: Optional[int] = None) -> dict:
        """{name: (module, to_maps)}: the modules whose forward output a visualisation hooks
        (method "modulator" or "gradcam"; stage None = the last); to_maps(output) gives
        (B*T, h, w, C). ValueError for a method or stage it does not have."""


@runtime_checkable
class HasDesigns(Protocol):
    """A family with design options that a FLOP table or a benchmark can vary."""

    designs: tuple

    def design_of(self, cfg) -> str:
        """The design a config selects."""


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class TextEncoder(Protocol):
    """A model that scores videos against class names given as text."""

    def encode_text(self, class_names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Class text features [C, E] for ``class_names`` (None: the classes it was built
        with); ``model(video, text_features=...)`` then scores against them."""


@runtime_checkable
class TextEncoderDetails(Protocol):
    """What a TextEncoder may add: how it prompts, what its features depend on (a cache key
    narrower than the whole state dict), how many classes a checkpoint's text tensors hold."""

    def text_prompt_mode(self, class_names: Optional[Sequence[str]] = None) -> str:
        """How encode_text turns these names into features (reported with zero-shot results)."""

    def text_state_dict(self, class_names: Optional[Sequence[str]] = None) -> Mapping:
        """The tensors encode_text(class_names) reads (a cache key of its result)."""

    @property
    def text_config(self) -> dict:
        """Settings that change encode_text without changing a tensor (a cache key)."""

    def num_classes_in(self, state_dict: Mapping) -> Optional[int]:
        """How many classes a checkpoint's class-dependent text tensors hold (None: none)."""


@runtime_checkable
class VideoEncoder(Protocol):
    """A model with its own video embedding (preferred for extract_features)."""

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pre-logit features (N, D) of clips (N, T, C, H, W)."""


@runtime_checkable
class TimmFeatures(Protocol):
    """timm's feature interface: forward_head(forward_features(x), pre_logits=True)."""

    def forward_features(self, video: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


@runtime_checkable
class NoWeightDecay(Protocol):
    """A model that names the parameters kept out of weight decay (besides norms, biases and
    other 1-D parameters, which never get it)."""

    def no_weight_decay(self) -> set:
        """Full parameter names or module prefixes."""


@runtime_checkable
class NoWeightDecayKeywords(Protocol):
    """timm's convention: name fragments (e.g. "norm") of parameters kept out of weight decay."""

    def no_weight_decay_keywords(self) -> set: ...


def missing_members(obj, protocol) -> list[str]:
    """The members of ``protocol`` that ``obj`` lacks (for an error that names them)."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items()
              if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return sorted(n for n in names if not hasattr(obj, n))

