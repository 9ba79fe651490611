"""Export a trained model for an inference runtime: ONNX, OpenVINO IR or a TensorRT engine, each
with a small JSON beside it (``<file>.json``) that makes the file usable without the config.

The exported graph takes float32 video ``video`` (B, T, C, H, W), normalised as the JSON says
(B dynamic; T, H and W fixed at the config's DATA.NUM_FRAMES and DATA.IMG_SIZE), and returns

* ``logits`` (B, classes): the model's forward;
* ``features`` (B, D): the pre-logit features ``engine.inference.clip_features`` gives
  (Video-FocalNet: the pooled features before the head; a model that scores videos against
  text, Vita-CLIP: its un-normalised video embeddings).

A model that scores videos against text is exported as its video tower with its class text
features computed once (``encode_text()``) and stored in the graph as a constant; the JSON keeps
``logit_scale`` so that other labels' text features (encoded by the PyTorch model) can be scored
against the exported ``features`` (engine/runtime.py).

ONNX comes from the classic exporter (``torch.onnx.export(dynamo=False)``, TorchScript tracing)
by default, ``exporter="dynamo"`` (``torch.export`` + onnxscript) on request. Both graphs agree
with eager to about 1e-7 and run equally fast under ONNX Runtime (docs/deploy.md), but on small
models the classic exporter takes seconds where torch.export takes half a minute (a tiny
Video-FocalNet: about 3 s against 25-35 s on 2 loaded cores), which decides it for tests that
export every design; for Video-FocalNet-T both take a minute or more, dominated by the forward. It needs model code without negative permutation dims (it writes them into
Transpose nodes that ONNX Runtime refuses; video_focalnet/modulation.py spells them
non-negative). The tracer fixes the frames and size (the model's shape checks become constants);
the batch stays dynamic. OpenVINO IR is converted from the ONNX file (``openvino.convert_model``)
and saved in float32 (``compress_to_fp16=False``; OpenVINO's default halves the weights).
TensorRT builds a float32 engine from the same ONNX file (CUDA only).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings

import torch
import torch.nn as nn

from common.fileio import atomic_path, atomic_write_text

from .build import config_class_names, unwrap_model
from .config import ConfigError
from .contract import TextEncoder, VideoEncoder
from .inference import clip_features
from .registry import model_family

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "EXPORTERS", "EXTENSIONS", "DEPLOY_EXTRA", "ExportGraph", "export_model",
           "sidecar_path",
           "pipeline_settings", "require_module", "export_onnx", "convert_to_openvino",
           "convert_to_tensorrt", "MissingRuntimeError", "ONNX_OPSET"]

FORMATS = ("onnx", "openvino", "tensorrt")
EXTENSIONS = {"onnx": ".onnx", "openvino": ".xml", "tensorrt": ".engine"}
DEPLOY_EXTRA = "pip install '.[deploy]' (or pip install -r requirements-deploy.txt)"
ONNX_OPSET = 18
EXPORTERS = ("classic", "dynamo")  # torch.onnx.export(dynamo=False | True)
FORMAT_VERSION = 1
# Config keys of evaluation's pipeline (datasets.eval_frame_indices / eval_clip_views): an
# exported model is fed exactly what tools/test.py feeds the PyTorch model.
PIPELINE_KEYS = ("DATA.NUM_FRAMES", "DATA.IMG_SIZE", "DATA.INPUT_SIZE", "DATA.SAMPLING",
                 "DATA.FRAME_INTERVAL", "AUG.FRAME_INTERVAL", "DATA.DECODER",
                 "DATA.RESIZE_ROUNDING", "DATA.MEAN", "DATA.STD", "TEST.NUM_CLIP",
                 "TEST.NUM_CROP", "TEST.RESIZE_SCALE", "TEST.THREE_CROP")


class MissingRuntimeError(ConfigError):
    """An optional deployment package is not installed (a user error: exit 2, one line)."""


def require_module(name: str, what: str):
    """Import an optional package of the ``deploy`` extra, or one line naming the extra."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingRuntimeError(f"{what} needs the Python package '{name.split('.')[0]}', "
                                  f"which is not installed: {DEPLOY_EXTRA}") from None


class ExportGraph(nn.Module):
    """What is exported: ``video -> (logits, features)`` of a model in eval mode.

    Text-scoring models (``encode_video`` + ``encode_text``) get their class text features as a
    constant buffer, L2-normalised once here, and the logit scale folded into it, so the graph
    is the video tower, one normalisation and one matrix product.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = unwrap_model(model).eval()
        self.scores_text = isinstance(self.model, TextEncoder) and \
            isinstance(self.model, VideoEncoder)
        if self.scores_text:
            with torch.no_grad():
                text = self.model.encode_text().float()
                text = text / text.norm(dim=-1, keepdim=True)
                self.logit_scale = float(self.model.logit_scale.exp())
                self.register_buffer("scaled_text", (self.logit_scale * text).t().contiguous())
        else:
            self.logit_scale = None
        self.eval()  # an exporter restores the mode it found: eval, or drop path would be traced

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = clip_features(self.model, video)  # what extract_features writes
        if self.scores_text:
            logits = (features / features.norm(dim=-1, keepdim=True)) @ self.scaled_text
            return logits, features
        return self.model.get_classifier()(features), features  # timm API: the head


def pipeline_settings(cfg) -> dict:
    """The evaluation pipeline's keys of ``cfg`` as ``{"DATA.X": value}`` (plain JSON types)."""
    out = {}
    for key in PIPELINE_KEYS:
        node = cfg
        for part in key.split("."):
            node = node[part]
        out[key] = list(node) if isinstance(node, (list, tuple)) else node
    return out


def sidecar_path(model_file: str) -> str:
    """The JSON that describes an exported file: ``<file>.json`` (model.onnx -> model.onnx.json)."""
    return model_file + ".json"


def export_onnx(graph: ExportGraph, video: torch.Tensor, dst: str,
                exporter: str = "classic") -> None:
    """ONNX with a dynamic batch, written to a temporary name and renamed (never a half-written
    file). ``exporter``: ``classic`` (TorchScript tracing) or ``dynamo`` (torch.export +
    onnxscript); see the module docstring for the choice."""
    require_module("onnx", "ONNX export")
    with atomic_path(dst) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks turned constants
        if exporter == "classic":
            torch.onnx.export(graph, (video,), tmp, input_names=["video"],
                              output_names=["logits", "features"],
                              dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"},
                                            "features": {0: "batch"}},
                              opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
        elif exporter == "dynamo":
            require_module("onnxscript", "ONNX export with dynamo=True")
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(graph, (video,), input_names=["video"],
                                        output_names=["logits", "features"],
                                        dynamic_shapes=({0: batch},), opset_version=ONNX_OPSET,
                                        dynamo=True, external_data=False, verbose=False,
                                        report=False, optimize=True)
            program.save(tmp, external_data=False)
        else:
            raise ConfigError(f"--exporter {exporter}: choose one of {', '.join(EXPORTERS)}")


def convert_to_openvino(onnx_file: str, dst: str) -> None:
    """OpenVINO IR (dst .xml + .bin, float32) converted from an ONNX file."""
    ov = require_module("openvino", "OpenVINO export")
    model = ov.convert_model(onnx_file)
    stem = os.path.splitext(dst)[0]
    workdir = tempfile.mkdtemp(prefix=".export-", dir=os.path.dirname(dst) or ".")
    try:  # .xml and .bin written together, then moved into place (.bin first: .xml names it)
        ov.save_model(model, os.path.join(workdir, "m.xml"), compress_to_fp16=False)
        os.replace(os.path.join(workdir, "m.bin"), stem + ".bin")
        xml = open(os.path.join(workdir, "m.xml"), encoding="utf-8").read()
        atomic_write_text(dst, xml.replace('"m.bin"', f'"{os.path.basename(stem)}.bin"'))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def convert_to_tensorrt(onnx_file: str, dst: str) -> None:
    """A float32 TensorRT engine built from the ONNX file (needs CUDA and the tensorrt package).
    The batch range is 1..32 with 1 as the optimisation point (single-clip latency)."""
    trt = require_module("tensorrt", "TensorRT export")
    if not torch.cuda.is_available():
        raise ConfigError("--format tensorrt needs a CUDA GPU (TensorRT builds its engine for "
                          "the GPU it runs on)")
    log = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(log)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(onnx_file):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_file}: {errors}")
    config = builder.create_builder_config()
    shape = tuple(network.get_input(0).shape)[1:]
    profile = builder.create_optimization_profile()
    profile.set_shape("video", (1, *shape), (1, *shape), (32, *shape))
    config.add_optimization_profile(profile)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # float32 outputs, comparable with eager
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_file}")
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
        f.write(bytes(engine))


def _sidecar(cfg, graph: ExportGraph, fmt: str, model_file: str, checkpoint: str,
             video: torch.Tensor, exporter: str) -> dict:
    from datasets import normalization
    mean, std = normalization(cfg)
    with torch.no_grad():
        logits, features = graph(video[:1])
    names = config_class_names(cfg) if not graph.scores_text else \
        list(getattr(graph.model, "class_names", []) or [])
    if names is None or len(names) != logits.shape[1]:
        names = [f"class {i}" for i in range(logits.shape[1])]
    _, frames, channels, height, width = video.shape
    return {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "file": os.path.basename(model_file),
        "exporter": f"torch.onnx.export(dynamo={exporter == 'dynamo'}), opset {ONNX_OPSET}, torch "
                    f"{torch.__version__.split('+')[0]}",
        "model_type": cfg.MODEL.TYPE,
        "checkpoint": os.path.abspath(checkpoint),
        "input": {"name": "video", "layout": "B,T,C,H,W", "dtype": "float32", "batch": "dynamic",
                  "frames": int(frames), "channels": int(channels), "height": int(height),
                  "width": int(width)},
        "outputs": {"logits": [None, int(logits.shape[1])],
                    "features": [None, int(features.shape[1])]},
        "class_names": list(names),
        "text": ({"baked": "the model's class text features (encode_text()), L2-normalised "
                           "and scaled", "logit_scale": graph.logit_scale}
                 if graph.scores_text else None),
        "normalization": {"mean": [float(m) for m in mean], "std": [float(s) for s in std],
                          "input_range": "RGB in 0..1, then (x - mean) / std"},
        "pipeline": pipeline_settings(cfg),
    }


def export_model(model: nn.Module, cfg, checkpoint: str, fmt: str, out_dir: str,
                 stem: str | None = None, exporter: str = "classic") -> str:
    """Export ``model`` (weights of ``checkpoint``, config ``cfg``) as ``fmt`` into ``out_dir``;
    returns the exported file's path (its JSON is ``sidecar_path`` of it). OpenVINO and
    TensorRT are converted from an ONNX file written first (kept beside them)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    stem = stem or os.path.splitext(os.path.basename(checkpoint))[0]
    os.makedirs(out_dir, exist_ok=True)
    graph = ExportGraph(model.float().cpu())
    video = model_family(cfg.MODEL.TYPE).example_input(cfg, 2)  # traced with a dynamic batch
    onnx_file = os.path.join(out_dir, stem + ".onnx")
    if os.path.abspath(onnx_file) == os.path.abspath(checkpoint):
        raise ConfigError(f"--out {out_dir}: the exported file would replace the checkpoint "
                          f"{checkpoint}; choose another --out")
    export_onnx(graph, video, onnx_file, exporter)
    meta = _sidecar(cfg, graph, "onnx", onnx_file, checkpoint, video, exporter)
    atomic_write_text(sidecar_path(onnx_file), json.dumps(meta, indent=1) + "\n")
    if fmt == "onnx":
        return onnx_file
    dst = os.path.join(out_dir, stem + EXTENSIONS[fmt])
    (convert_to_openvino if fmt == "openvino" else convert_to_tensorrt)(onnx_file, dst)
    meta = {**meta, "format": fmt, "file": os.path.basename(dst)}  # the same model, another file
    atomic_write_text(sidecar_path(dst), json.dumps(meta, indent=1) + "\n")
    return dst
