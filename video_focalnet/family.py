"""What the engine needs to know about Video-FocalNet (``engine/registry.py`` describes it).

The engine finds ``FAMILY`` through the ``video_recognition.models`` entry point in setup.py and
never names this package itself.
"""
from __future__ import annotations

import logging

import timm
import torch

from common.errors import ConfigValueError
from common.safe_load import CheckpointError, with_prefix

from .checkpoint import load_pretrained
from .config import INPUT_PIPELINE, add_focal_config, model_kwargs_from_cfg, validate_focal_config
from .model import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, VideoFocalNet
from .modulation import ST_DESIGNS
from .pretrained import RELEASED_WEIGHTS

logger = logging.getLogger(__name__)

__all__ = ["FAMILY", "VideoFocalNetFamily", "build_model"]


def build_model(cfg) -> VideoFocalNet:
    """The Video-FocalNet of ``cfg``; loads TRAIN.PRETRAINED_PATH (2-D or video weights) if set.

    As in the reference, the initialisation is skipped when the weights will come from elsewhere
    anyway: evaluation (EVAL_MODE) or an explicit MODEL.RESUME checkpoint. No other file is read.
    """
    model = VideoFocalNet(**model_kwargs_from_cfg(cfg))
    if cfg.TRAIN.PRETRAINED_PATH and (cfg.EVAL_MODE or cfg.MODEL.RESUME):
        logger.info("TRAIN.PRETRAINED_PATH not loaded: weights come from %s",
                    "the evaluated checkpoint" if cfg.EVAL_MODE else "MODEL.RESUME")
    elif cfg.TRAIN.PRETRAINED_PATH:
        try:
            load_pretrained(model, cfg.TRAIN.PRETRAINED_PATH)
        except CheckpointError as err:  # unreadable or unsafe: the one wording, the key named
            raise with_prefix(err, "key TRAIN.PRETRAINED_PATH: ") from err
        except (ValueError, RuntimeError) as err:  # another model's weights: name the key
            raise ConfigValueError("TRAIN.PRETRAINED_PATH", str(err)) from err
        except FileNotFoundError as err:
            raise FileNotFoundError(f"TRAIN.PRETRAINED_PATH: {err}") from None
    return model


class VideoFocalNetFamily:
    name = "video_focalnet"
    # official names first, timm-style aliases, then the free-size type the demo uses
    model_types = tuple(f"videofocalnet_{v}" for v in VARIANTS) + \
        tuple(f"video_focalnet_{v}" for v in VARIANTS) + ("videofocalnet_custom",)
    benchmark_names = tuple(f"video_focalnet_{v}" for v in VARIANTS)
    designs = ST_DESIGNS  # the benchmark's ``design`` option (MODEL.FOCAL.ST_DESIGN)
    # Weights keys the engine resolves (model-zoo names -> files) before build(); see engine/zoo.py
    weight_keys = ("TRAIN.PRETRAINED_PATH",)
    # The released files, declared beside the model (pretrained.py); the engine's zoo serves them
    released_weights = RELEASED_WEIGHTS

    def add_config(self, cfg) -> None:
        """Add ``MODEL.FOCAL`` (video_focalnet/config.py)."""
        add_focal_config(cfg)

    def validate(self, cfg) -> None:
        """ConfigValueError("MODEL.FOCAL.X", ...) for a config the model cannot be built from."""
        validate_focal_config(cfg)

    def build(self, cfg, class_names=None) -> VideoFocalNet:
        """The model of ``cfg``. The head only needs MODEL.NUM_CLASSES; the engine checks it
        against the config's class list (engine.build.check_class_count), and names a caller
        passes must agree with it too: a head of fixed size cannot score another list."""
        classes = cfg.MODEL.NUM_CLASSES
        if class_names is not None and classes > 0 and len(class_names) != classes:
            raise ConfigValueError("MODEL.NUM_CLASSES", (
                f"the head has {classes} outputs but the class list has {len(class_names)} "
                f"names; set MODEL.NUM_CLASSES {len(class_names)}"))
        return build_model(cfg)

    def design_of(self, cfg) -> str:
        """The design of a config's model, one of ``designs`` (a FLOP table's row label)."""
        return cfg.MODEL.FOCAL.ST_DESIGN

    def normalization(self, cfg):
        return IMAGENET_MEAN, IMAGENET_STD

    def input_pipeline(self, cfg) -> dict:
        """The official pipeline's config values (video_focalnet/config.py INPUT_PIPELINE)."""
        return dict(INPUT_PIPELINE)

    def visual_taps(self, model: VideoFocalNet, method: str, stage: int | None = None) -> dict:
        """The modules a visualisation hooks, in the last block of ``stage`` (default: the last
        stage), each with its output as maps ``(B*T', h, w, C)`` (tokens already are):

        * ``modulator``: ``spatial`` = ``h`` (its output is ``h(ctx_all)``, the official
          ``modulator``) and, for designs with a temporal branch, ``temporal`` = ``h_temporal``
          (``h_temporal(ctx_all_t)``, the official ``modulator_temporal``);
        * ``gradcam``: ``features`` = the block's output.
        """
        stages = len(model.layers)
        stage = stages - 1 if stage is None else int(stage)
        if not 0 <= stage < stages:
            raise ValueError(f"stage {stage} does not exist: the model has {stages} stages "
                             f"(0..{stages - 1})")
        block = model.layers[stage].blocks[-1]
        if method == "gradcam":
            return {"features": (block, _tokens)}
        if method == "modulator":
            taps = {"spatial": (block.modulation.h, _tokens)}
            if hasattr(block.modulation, "h_temporal"):
                taps["temporal"] = (block.modulation.h_temporal, _tokens)
            return taps
        raise ValueError(f"unknown visualisation {method!r} for Video-FocalNet; use modulator "
                         f"or gradcam")

    def example_input(self, cfg, batch_size: int = 1) -> torch.Tensor:
        """A seeded N(0, 1) video ``(B, DATA.NUM_FRAMES, IN_CHANS, DATA.IMG_SIZE, DATA.IMG_SIZE)``."""
        size = int(cfg.DATA.IMG_SIZE)
        shape = (batch_size, int(cfg.DATA.NUM_FRAMES), int(cfg.MODEL.FOCAL.IN_CHANS), size, size)
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def benchmark_models(self, name: str, num_frames: int = 8, img_size: int = 224,
                         num_classes: int = 400, batch_size: int = 1, design: str | None = None,
                         **options) -> dict:
        """``{"model": VideoFocalNet, "input": video (B, T, 3, H, W)}`` for ``video_focalnet_*``.

        ``design`` is ``MODEL.FOCAL.ST_DESIGN`` (constructor ``st_design``); other ``options``
        go to the VideoFocalNet constructor. Weights come from the caller's RNG state.
        """
        if name not in self.benchmark_names:
            raise KeyError(f"unknown model {name!r}; known: {', '.join(self.benchmark_names)}")
        if design is not None:
            options["st_design"] = design
        model = timm.create_model(name, num_frames=num_frames, img_size=img_size,
                                  num_classes=num_classes, **options)
        video = torch.randn((batch_size, num_frames, model.in_chans, img_size, img_size),
                            generator=torch.Generator().manual_seed(0))
        return {"model": model, "input": video}


def _tokens(output: torch.Tensor) -> torch.Tensor:
    return output  # the blocks and their modules work on tokens (B*T', h, w, C) already


FAMILY = VideoFocalNetFamily()
