"""Video-FocalNet: spatio-temporal focal modulation for video recognition (ICCV 2023).

Importing the package registers ``video_focalnet_{tiny,small,base}`` in timm's model registry.
"""
from .checkpoint import (checkpoint_filter_fn, convert_timm_focalnet, load_pretrained,
                         load_video_checkpoint)
from .model import (VARIANTS, PatchEmbed, VideoFocalNet, VideoFocalNetBlock, VideoFocalNetStage,
                    build_model, count_params, model_kwargs_from_cfg, variant_of)
from .modulation import (JointFocalModulation, SequentialFocalModulation, SpatialFocalModulation,
                         SpatioTemporalFocalModulation, build_modulation)

__all__ = ["VideoFocalNet", "VideoFocalNetBlock", "VideoFocalNetStage", "PatchEmbed",
           "SpatioTemporalFocalModulation", "SpatialFocalModulation", "SequentialFocalModulation",
           "JointFocalModulation", "build_modulation", "build_model", "model_kwargs_from_cfg",
           "variant_of", "count_params", "VARIANTS", "checkpoint_filter_fn",
           "convert_timm_focalnet", "load_pretrained", "load_video_checkpoint"]
