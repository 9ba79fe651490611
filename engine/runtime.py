"""Run an exported model (engine/export.py) under an inference runtime, as a drop-in for the
PyTorch model in evaluation, prediction and feature extraction.

``RuntimeModel`` is an ``nn.Module`` without parameters whose forward runs the exported graph:
``model(video) -> logits`` and ``model.encode_video(video) -> features``, so
``engine.scoring.view_probabilities``, ``engine.inference.clip_features`` and the tools use
it unchanged. ``load_inference_model`` is the one place the tools go through:

* ``--checkpoint model.onnx`` / ``model.xml`` (an exported file): run it (``--runtime``
  onnxruntime or openvino; an ``.onnx`` file runs under either, an ``.xml`` under openvino);
* ``--checkpoint best.pth --runtime onnxruntime|openvino``: the checkpoint is exported into a
  temporary folder first (tens of seconds for Video-FocalNet-T), then run;
* ``--runtime torch`` (the default for a checkpoint): the PyTorch model as before.

Runtimes run float32 on the CPU with torch's thread count. OpenVINO's CPU plugin would run
bfloat16 on CPUs with AMX/AVX512-BF16 by default; it is held to float32
(``INFERENCE_PRECISION_HINT f32``) so outputs stay within 1e-4 of PyTorch.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from .config import ConfigError, load_cfg
from .contract import TextEncoder
from .export import EXTENSIONS, export_model, require_module, sidecar_path

logger = logging.getLogger(__name__)

__all__ = ["RUNTIMES", "RuntimeModel", "is_exported", "read_sidecar", "exported_cfg",
           "inference_cfg", "check_cfg_fits", "load_inference_model"]

RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")  # tensorrt: CUDA only
_RUNTIME_OF_EXTENSION = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt"}


def is_exported(path: str) -> bool:
    """Whether ``path`` names an exported model file (by extension)."""
    return os.path.splitext(path)[1].lower() in tuple(EXTENSIONS.values())


def read_sidecar(model_file: str) -> dict:
    """The JSON written beside an exported file; a one-line error when it is missing or bad."""
    path = sidecar_path(model_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{model_file}: its description {path} is missing (written by "
                                f"tools/export.py beside the exported file); export again")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        meta["input"]["frames"], meta["pipeline"]["TEST.NUM_CLIP"]  # noqa: B018 - required keys
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a description of an exported model ({err}); export "
                          f"again with tools/export.py") from None
    return meta


def exported_cfg(meta: dict, opts: Sequence[str] = ()):
    """A config for an exported model without its YAML: its MODEL.TYPE and evaluation pipeline
    from the JSON, then ``opts`` (e.g. ``TEST.NUM_CLIP 1``)."""
    stored = []
    for key, value in meta["pipeline"].items():
        stored += [key, json.dumps(value) if isinstance(value, (list, str)) else str(value)]
    classes = len(meta["class_names"])
    stored += ["MODEL.TYPE", meta["model_type"], "MODEL.NUM_CLASSES", str(classes),
               "DATA.NUM_CLASSES", str(classes)]
    return load_cfg(None, stored + list(opts))


def inference_cfg(cfg_file: str | None, checkpoint: str, opts: Sequence[str] = ()):
    """The config of an inference tool: ``--cfg`` when given, else (an exported checkpoint) the
    one its JSON describes; a ConfigError naming --cfg when neither is there."""
    if cfg_file:
        return load_cfg(cfg_file, opts)
    if not is_exported(checkpoint):
        raise ConfigError(f"--cfg FILE is needed for --checkpoint {checkpoint} (only an exported "
                          f"model, {' / '.join(EXTENSIONS.values())}, brings its own settings)")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    return exported_cfg(read_sidecar(checkpoint), opts)


def check_cfg_fits(cfg, meta: dict, model_file: str) -> None:
    """The exported graph has fixed frames and size: a config that feeds other clips is an error
    naming both (the views per video, TEST.NUM_CLIP x NUM_CROP, may differ freely)."""
    want = meta["input"]
    got = {"DATA.NUM_FRAMES": (cfg.DATA.NUM_FRAMES, want["frames"]),
           "DATA.INPUT_SIZE": (cfg.DATA.INPUT_SIZE, want["height"])}
    for key, (value, exported) in got.items():
        if int(value) != int(exported):
            raise ConfigError(f"{key} {value}: {model_file} was exported for clips of "
                              f"{want['frames']} frames of {want['height']}x{want['width']} "
                              f"pixels; use its settings (leave --cfg out to take them from "
                              f"{sidecar_path(model_file)})")


class _OnnxRuntimeSession:
    def __init__(self, model_file: str, threads: int, device: str):
        ort = require_module("onnxruntime", "--runtime onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep instead of spinning: the runtime shares the CPU with the decoder
        # and PyTorch (spinning threads slowed everything running after it)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(model_file, options, providers=providers)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, video: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {"video": video})
        return dict(zip(self.output_names, outputs))


class _OpenVinoSession:
    def __init__(self, model_file: str, threads: int, device: str):
        ov = require_module("openvino", "--runtime openvino")
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": threads}
        self.compiled = core.compile_model(model_file, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def __call__(self, video: np.ndarray) -> dict[str, np.ndarray]:
        result = self.request.infer({"video": video})
        return {name: np.array(result[output], copy=True)
                for name, output in zip(self.output_names, self.compiled.outputs)}


class _TensorRtSession:
    """A serialized TensorRT engine (tools/export.py --format tensorrt) on the current GPU;
    buffers are torch CUDA tensors."""

    def __init__(self, model_file: str, threads: int, device: str):
        trt = require_module("tensorrt", "--runtime tensorrt")
        if not torch.cuda.is_available():
            raise ConfigError("--runtime tensorrt needs a CUDA GPU")
        with open(model_file, "rb") as f:
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
                f.read())
        if self.engine is None:
            raise ConfigError(f"{model_file}: TensorRT could not load this engine (it is built "
                              f"for one GPU and TensorRT version); export it again here")
        self.context = self.engine.create_execution_context()
        self.output_names = ["logits", "features"]

    def __call__(self, video: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in self.run_cuda(torch.from_numpy(video)).items()}

    def run_cuda(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        video = video.to("cuda", torch.float32).contiguous()
        self.context.set_input_shape("video", tuple(video.shape))
        self.context.set_tensor_address("video", video.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, device="cuda", dtype=torch.float32)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT inference failed")
        stream.synchronize()
        return outputs


_SESSIONS = {"onnxruntime": _OnnxRuntimeSession, "openvino": _OpenVinoSession,
             "tensorrt": _TensorRtSession}


class RuntimeModel(nn.Module):
    """An exported model under ``runtime``: ``forward(video) -> logits``,
    ``encode_video(video) -> features``; tensors in and out, float32 on the caller's device.

    ``forward(video, text_features=T)`` scores the exported features against other class text
    features ``T`` [C, E] (a model exported with baked text; ``T`` from the PyTorch model's
    ``encode_text``), as the PyTorch forward does. ``text_model`` is that PyTorch model when
    the runtime was started from a checkpoint (None for an exported file).
    """

    def __init__(self, model_file: str, runtime: str, threads: int | None = None,
                 device: str = "cpu", text_model: nn.Module | None = None,
                 meta: dict | None = None):
        super().__init__()
        if runtime not in _SESSIONS:
            raise ConfigError(f"--runtime {runtime}: an exported model runs under "
                              f"{' or '.join(_SESSIONS)}")
        if (runtime == "tensorrt") != model_file.lower().endswith(".engine"):
            raise ConfigError(f"--runtime {runtime} cannot run {model_file}: a TensorRT "
                              f".engine runs under --runtime tensorrt only")
        if runtime == "onnxruntime" and not model_file.lower().endswith(".onnx"):
            raise ConfigError(f"--runtime onnxruntime runs .onnx files, not {model_file}; use "
                              f"--runtime openvino, or the .onnx file exported beside it")
        self.meta = meta if meta is not None else read_sidecar(model_file)
        self.model_file = model_file
        self.runtime = runtime
        self.session = _SESSIONS[runtime](model_file, threads or torch.get_num_threads(), device)
        self.text_model = text_model
        self.eval()

    def __repr__(self) -> str:
        return f"RuntimeModel({self.model_file!r}, runtime={self.runtime!r})"

    def run(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(self.session, _TensorRtSession):  # GPU in, GPU out
            return {k: v.to(video.device) for k, v in self.session.run_cuda(video).items()}
        array = video.detach().to("cpu", torch.float32).contiguous().numpy()
        return {name: torch.from_numpy(out).to(video.device)
                for name, out in self.session(array).items()}

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return self.run(video)["features"]

    def forward(self, video: torch.Tensor, text_features: torch.Tensor | None = None
                ) -> torch.Tensor:
        outputs = self.run(video)
        if text_features is None:
            return outputs["logits"]
        text = self.meta.get("text") or {}
        if "logit_scale" not in text:
            raise ConfigError(f"{self.model_file} is a classifier over its own classes; other "
                              f"labels need a model that scores videos against text")
        video_features = outputs["features"]
        video_features = video_features / video_features.norm(dim=-1, keepdim=True)
        text_features = text_features.to(video_features)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        return text["logit_scale"] * video_features @ text_features.t()


def load_inference_model(cfg, checkpoint: str, runtime: str | None = None,
                         device: torch.device | str = "cpu", what: str = "--checkpoint"
                         ) -> nn.Module:
    """The model the tools run: the PyTorch model of a checkpoint (``runtime`` torch or None),
    or a RuntimeModel of an exported file, or of a checkpoint exported on the fly."""
    from .inference import load_trained_model
    device = torch.device(device)
    exported = is_exported(checkpoint)
    if runtime is None:
        runtime = _RUNTIME_OF_EXTENSION.get(os.path.splitext(checkpoint)[1].lower(), "torch")
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
    if exported:
        if runtime == "torch":
            raise ConfigError(f"{what} {checkpoint} is an exported model: run it with "
                              f"--runtime onnxruntime, openvino or tensorrt (.engine), or give "
                              f"the .pth checkpoint for --runtime torch")
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"{what} {checkpoint} does not exist")
        model = RuntimeModel(checkpoint, runtime, device=device.type)
        check_cfg_fits(cfg, model.meta, checkpoint)
        return model
    torch_model = load_trained_model(cfg, checkpoint, "cpu" if runtime != "torch" else device,
                                     what)
    if runtime == "torch":
        return torch_model
    if runtime == "tensorrt":
        raise ConfigError("--runtime tensorrt runs an engine exported by tools/export.py "
                          "--format tensorrt (give the .engine file as --checkpoint)")
    require_module(runtime, f"--runtime {runtime}")
    logger.info("exporting %s to ONNX for --runtime %s", checkpoint, runtime)
    scores_text = isinstance(torch_model, TextEncoder)
    with tempfile.TemporaryDirectory(prefix="video-export-") as folder:  # the runtimes keep
        model_file = export_model(torch_model, cfg, checkpoint, "onnx", folder, stem="model")
        return RuntimeModel(model_file, runtime, device=device.type,  # the graph in memory
                            text_model=torch_model if scores_text else None)
