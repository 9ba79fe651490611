"""Video-FocalNet: spatio-temporal focal modulation for video recognition (ICCV 2023).

Importing the package registers ``video_focalnet_{tiny,small,base}`` in timm's model registry.
The engine reaches the package through ``video_focalnet.family:FAMILY`` (setup.py entry point).
"""
from .checkpoint import load_pretrained, load_video_checkpoint
from .family import build_model
from .model import VARIANTS, VideoFocalNet
from .modulation import ST_DESIGNS

__all__ = ["VideoFocalNet", "VARIANTS", "ST_DESIGNS", "build_model", "load_pretrained",
           "load_video_checkpoint"]
