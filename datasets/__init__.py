"""Video data: annotation readers, decoders, frame sampling, clip transforms, the Dataset and
its loaders. Entry points: ``build_dataset(cfg, split)``, ``build_loader(cfg, split)``,
``build_mixup(cfg)``."""
from .annotations import AnnotationError, read_class_names, read_list_file
from .build import build_dataset, build_loader, build_mixup, load_annotations
from .decoding import VideoDecodeError, load_frames
from .video_dataset import VideoDataset, normalization

__all__ = ["build_dataset", "build_loader", "build_mixup", "load_annotations", "VideoDataset",
           "AnnotationError", "VideoDecodeError", "load_frames", "read_class_names",
           "read_list_file", "normalization"]
