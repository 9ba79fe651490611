"""Video data: dataset layouts and class lists, decoders, frame sampling, clip transforms, the
Dataset and its loaders. Entry points: ``build_dataset(cfg, split)``, ``build_loader(cfg, split)``,
``build_mixup(cfg)``; ``class_names(cfg)`` / ``default_class_names(name)`` for class lists;
``bundled_protocol_file(path)`` for the published split files in ``datasets/protocols/``;
``register_layout(name, reader)`` to add a DATA.DATASET value (see datasets/layouts.py)."""
from ._guard import DISTRIBUTION, check_distribution
from .annotations import AnnotationError, read_class_names, read_list_file
from .build import build_dataset, build_loader, build_mixup
from .decoding import VideoDecodeError, count_frames, frame_rate, load_frames
from .layouts import (annotation_file, bundled_class_file, bundled_protocol_file, class_names,
                      default_class_names, layout_names, load_annotations, register_layout)
from .video_dataset import VideoDataset, eval_clip_views, eval_frame_indices, normalization

check_distribution()

__all__ = ["build_dataset", "build_loader", "build_mixup", "load_annotations", "VideoDataset",
           "AnnotationError", "VideoDecodeError", "load_frames", "count_frames", "frame_rate",
           "eval_frame_indices", "eval_clip_views", "read_class_names",
           "read_list_file", "normalization", "class_names", "default_class_names",
           "bundled_class_file", "bundled_protocol_file", "annotation_file", "register_layout",
           "layout_names", "DISTRIBUTION"]
