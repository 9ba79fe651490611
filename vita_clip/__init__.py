"""Vita-CLIP: video and text adaptive CLIP via multimodal prompting (CVPR 2023).

Main entry points:
* ``build_model(cfg)``: the model of a config (MODEL.TYPE vita_clip).
* ``zero_shot_classifier(model, class_names, cache_dir)``: text features [C, E] for any label
  set, cached on disk; ``model.use_cached_text_features(features)`` makes the model use them
  (``model.set_class_names(names, cache_dir)`` does both).
* ``load_clip_weights(model, path)``: OpenAI CLIP (TorchScript archive or state dict) or the
  reference's converted backbone, strict on the CLIP subset, without running code from the file.
* timm name ``vita_clip_b16`` (registered on import).
"""
from .build import benchmark_setup, build_model, model_kwargs_from_cfg, vita_clip_b16
from .cache import default_cache_dir, text_cache_key, zero_shot_classifier
from .model import TRAINABLE_VISUAL_KEYWORDS, VitaCLIP
from .tokenizer import read_class_names, tokenize
from .weights import (checkpoint_filter_fn, load_clip_weights, openai_to_vita, read_checkpoint,
                      read_torchscript_state_dict)

__all__ = ["VitaCLIP", "build_model", "model_kwargs_from_cfg", "vita_clip_b16",
           "benchmark_setup", "zero_shot_classifier", "text_cache_key", "default_cache_dir",
           "load_clip_weights", "openai_to_vita", "read_checkpoint", "read_torchscript_state_dict",
           "checkpoint_filter_fn", "read_class_names", "tokenize", "TRAINABLE_VISUAL_KEYWORDS"]
