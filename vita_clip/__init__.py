"""Vita-CLIP: video and text adaptive CLIP via multimodal prompting (CVPR 2023).

Main entry points:
* ``build_model(cfg, class_names)``: the model of a config (MODEL.TYPE vita_clip) for a class
  list; ``FAMILY`` (vita_clip/family.py) is what the engine's model registry uses.
* ``VitaCLIP.encode_text(class_names=None)``: class text features [C, E] (own classes through the
  learned prompts, or any names); ``model(video, text_features=...)`` scores against them.
* ``load_clip_weights(model, path)``: OpenAI CLIP (TorchScript archive or state dict) or the
  reference's converted backbone, strict on the CLIP subset, without running code from the file.
* timm name ``vita_clip_b16`` (registered on import).

This package imports nothing from the engine, the tools or the tests.
"""
from .build import build_model, vita_clip_b16
from .config import add_vita_config, model_kwargs_from_cfg, validate_vita_config
from .model import TRAINABLE_VISUAL_KEYWORDS, VitaCLIP
from .tokenizer import tokenize
from .weights import (checkpoint_filter_fn, load_clip_weights, openai_to_vita, read_checkpoint,
                      read_torchscript_state_dict)

__all__ = ["VitaCLIP", "build_model", "model_kwargs_from_cfg", "add_vita_config",
           "validate_vita_config", "vita_clip_b16", "load_clip_weights", "openai_to_vita",
           "read_checkpoint", "read_torchscript_state_dict", "checkpoint_filter_fn", "tokenize",
           "TRAINABLE_VISUAL_KEYWORDS"]
