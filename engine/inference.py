"""Using a trained model on any video: inputs, checkpoints, time windows, probabilities,
features and activations captured with forward hooks.

The preprocessing is evaluation's own: the frames of a video (or of a time window of it) are
sampled with ``datasets.eval_frame_indices``, decoded with ``DATA.DECODER`` and turned into the
``TEST.NUM_CLIP x TEST.NUM_CROP`` views by ``datasets.eval_clip_views``, and every video is scored
by ``engine.evaluation.view_probabilities``. So the probabilities of a whole video are the ones
``tools/test.py`` writes for it.

Like the rest of the engine, nothing here names a model. Features come from the model by duck
typing (``encode_video``, else timm's ``forward_features`` + ``forward_head(pre_logits=True)``);
which modules to hook for a visualisation is asked from the model family (``visual_taps``,
engine/registry.py).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import yaml

import datasets
from common.modules import unwrap_model
from datasets.annotations import VIDEO_EXTENSIONS, AnnotationError, numbered_lines

from .build import build_model_without_init, check_checkpoint_classes, config_class_names
from .checkpoint import CheckpointError, checkpoint_to_cfg_yaml, ensure_writable_dir, \
    extract_state_dict, load_model_weights, safe_load
from .config import ConfigError
from .contract import TimmFeatures, VideoEncoder, Visualizable
from .evaluation import view_probabilities
from .registry import model_family

logger = logging.getLogger(__name__)

__all__ = ["collect_videos", "decode_failure", "writable_folder", "parse_labels", "time_windows",
           "load_trained_model", "output_names", "video_spans", "span_views", "predict_spans",
           "clip_features", "feature_spans", "visual_taps", "capture_outputs", "modulator_maps", "grad_cam",
           "Span"]

Span = tuple[int, int]  # [start, stop) frame positions of a window
LIST_EXTENSIONS = (".txt", ".csv", ".lst", ".list")


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def _videos_under(folder: str) -> list[str]:
    """Video files at any depth. Symlinked folders are followed, each real folder once: a link
    that points back up (a loop) or twice at one folder adds no video twice."""
    found, seen = [], set()
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()
        found += [os.path.join(directory, f) for f in sorted(files)
                  if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
    return found


def _not_regular(path: str) -> bool:
    """An existing path that is no regular file (a FIFO, a device, a socket): opening one to
    decode it could block forever."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing: decoding reports it
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _list_entries(path: str) -> list[str]:
    """Video paths of a list file: the first field of ``path[,label]`` / ``path label`` lines
    (a test split file works as it is); relative paths are taken from the list's folder."""
    base = os.path.dirname(os.path.abspath(path))
    videos = []
    for _, line in numbered_lines(path):
        if line.startswith("#"):
            continue
        if "," in line:
            video = line.split(",", 1)[0].strip()
        else:
            fields = line.rsplit(None, 1)
            video = fields[0] if len(fields) == 2 and fields[1].lstrip("-").isdigit() else line
        videos.append(video if os.path.isabs(video) else os.path.join(base, video))
    if not videos:
        raise AnnotationError(f"{path}: the list file names no videos")
    return videos


def collect_videos(inputs: Sequence[str], what: str = "input") -> list[str]:
    """The videos that ``inputs`` name, in order and without repeats: video files, folders
    (searched at any depth for VIDEO_EXTENSIONS files) and list files (one video per line, as
    ``path`` or ``path,label``). A missing input or a folder without videos is an error naming
    it; a listed video that is missing is returned (its decoding reports it)."""
    videos: list[str] = []
    for item in inputs:
        if not os.path.exists(item):
            raise FileNotFoundError(f"{what} {item} does not exist")
        if os.path.isdir(item):
            found = _videos_under(item)
            if not found:
                raise FileNotFoundError(f"{what} folder {item} holds no videos "
                                        f"({', '.join(VIDEO_EXTENSIONS)}) at any depth")
            videos += found
        elif os.path.splitext(item)[1].lower() in LIST_EXTENSIONS and not _not_regular(item):
            videos += _list_entries(item)
        else:
            videos.append(item)
    videos = list(dict.fromkeys(videos))
    # the same file reached through a symlinked folder and directly counts once
    unique, real_paths = [], set()
    for video in videos:
        real = os.path.realpath(video)
        if real in real_paths:
            continue
        real_paths.add(real)
        if _not_regular(video):
            logger.warning("skipped %s: not a regular file (a FIFO, device or socket)", video)
            continue
        unique.append(video)
    if not unique and videos:
        raise FileNotFoundError(f"{what}: no regular video file among {len(videos)} path(s) "
                                f"(FIFOs, devices and sockets are skipped)")
    return unique


def decode_failure(path: str, err: Exception) -> str:
    """``path: reason`` for a video that could not be decoded, naming the path once (the
    decoders' messages already start with it)."""
    text = str(err)
    return text if text.startswith(path) else f"{path}: {text}"


def writable_folder(folder: str, flag: str) -> str:
    """Create ``folder`` and prove it writable before any work; PermissionError naming the
    command-line flag it came from otherwise."""
    try:
        return ensure_writable_dir(folder, flag)
    except PermissionError as err:
        cause = err.__cause__
        reason = getattr(cause, "strerror", None) or cause or err
        raise PermissionError(f"{flag}: cannot write into {folder} ({reason}); choose another "
                              f"path") from None


def parse_labels(value: str) -> list[str]:
    """Class names from ``--labels``: a class file (datasets.read_class_names: one name per line
    or ``id,name`` CSV), else a comma-separated list. A value without a comma that looks like a
    path (a folder separator, or a list file's extension) must be an existing file: a mistyped
    file name is never taken for one class called like it."""
    if os.path.isdir(value):
        raise IsADirectoryError(f"--labels {value} is a folder; give a class file (one name "
                                f"per line) or names separated by commas")
    if os.path.isfile(value):
        return datasets.read_class_names(value)
    looks_like_a_path = "," not in value and (  # a comma list is names, slashes and all
        "/" in value or os.sep in value
        or os.path.splitext(value)[1].lower() in LIST_EXTENSIONS + (".json", ".yaml"))
    if looks_like_a_path:
        raise FileNotFoundError(f"--labels {value}: no such class file; check the path, or "
                                f"give names separated by commas")
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--labels {value!r}: no class names (give a file with one name per "
                          f"line, or names separated by commas)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--labels {value!r}: a name is listed twice")
    return names


# ---------------------------------------------------------------------------------------------
# Time windows
# ---------------------------------------------------------------------------------------------
def time_windows(num_frames: int, fps: float, window_s: float, stride_s: float) -> list[Span]:
    """[start, stop) frame spans of ``window_s`` seconds every ``stride_s`` seconds; a last
    window ends at the last frame when the stride does not land there, and a video shorter than
    one window is one window. Window k starts at the frame nearest to k x ``stride_s`` seconds
    (at least one frame after the previous one), so a stride that is not a whole number of
    frames (0.5 s at 25 fps) does not drift along a long video."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError("window and stride must be positive seconds")
    length = max(1, int(round(window_s * fps)))
    step = max(1.0, stride_s * fps)  # in frames, not rounded: rounding it would add up
    if num_frames <= length:
        return [(0, num_frames)]
    starts = [0]
    while True:
        start = max(starts[-1] + 1, math.floor(len(starts) * step + 0.5))
        if start + length > num_frames:
            break
        starts.append(start)
    spans = [(s, s + length) for s in starts]
    if spans[-1][1] < num_frames:
        spans.append((num_frames - length, num_frames))
    return spans


def video_spans(cfg, path: str, window_s: float | None, stride_s: float | None
                ) -> tuple[list[Span] | None, int | None, float | None]:
    """(spans, frame count, fps) of a video: the time windows, or (None, None, None) for the
    whole video (its frame count is then the decoder's business, as in evaluation)."""
    if not window_s:
        return None, None, None
    count = datasets.count_frames(path, cfg.DATA.DECODER)
    fps = datasets.frame_rate(path)
    return time_windows(count, fps, window_s, stride_s or window_s), count, fps


def span_views(cfg, path: str, spans: Sequence[Span] | None) -> list[torch.Tensor]:
    """The evaluation views (V, T, C, S, S) of each span of ``path`` (``None``: the whole video,
    exactly the test Dataset's item), decoded in one pass with DATA.DECODER."""
    per_view = cfg.TEST.NUM_CLIP * cfg.DATA.NUM_FRAMES
    if spans is None:
        frames = datasets.load_frames(path, lambda n: datasets.eval_frame_indices(cfg, n),
                                      cfg.DATA.DECODER)
        return [datasets.eval_clip_views(torch.from_numpy(frames), cfg)]
    indices = np.concatenate([start + datasets.eval_frame_indices(cfg, stop - start)
                              for start, stop in spans])
    frames = torch.from_numpy(datasets.load_frames(path, lambda n: indices, cfg.DATA.DECODER))
    return [datasets.eval_clip_views(chunk, cfg) for chunk in frames.split(per_view)]


def _chunks(spans: Sequence[Span] | None, size: int) -> Iterator[Sequence[Span] | None]:
    if spans is None:
        yield None
        return
    for i in range(0, len(spans), max(1, size)):
        yield spans[i:i + size]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def _stored_model_type(ckpt: dict) -> str | None:
    text = checkpoint_to_cfg_yaml(ckpt)
    if not text:
        return None
    try:
        model = (yaml.safe_load(text) or {}).get("MODEL") or {}
    except yaml.YAMLError:
        return None
    return model.get("TYPE") if isinstance(model, dict) else None


def _family_name(model_type: str | None) -> str | None:
    try:
        return model_family(model_type).name if model_type else None
    except KeyError:
        return None


def _check_fits(model: nn.Module, state: dict, ckpt: dict, checkpoint: str, cfg,
                what: str) -> None:
    """One line saying why a checkpoint's weights do not fit the config's model, if they do
    not (load_state_dict's own message lists every key)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    stored = _stored_model_type(ckpt)
    if stored and _family_name(stored) != _family_name(cfg.MODEL.TYPE):
        raise CheckpointError(f"{what} {checkpoint} holds a {stored} model, but the config "
                              f"builds {cfg.MODEL.TYPE}; pass the config it was trained with "
                              f"(--cfg)")
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the model's weights missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if reshaped:
        k = reshaped[0]
        problems.append(f"{len(reshaped)} of another shape (e.g. {k}: "
                        f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the "
                        f"model)")
    raise CheckpointError(f"{what} {checkpoint} does not fit the {cfg.MODEL.TYPE} model of the "
                          f"config: {'; '.join(problems)}; pass the config it was trained with "
                          f"(--cfg; sizes, MODEL.NUM_CLASSES and the class list must match)")


def load_trained_model(cfg, checkpoint: str, device: torch.device | str = "cpu",
                       what: str = "--checkpoint") -> nn.Module:
    """The model of ``cfg`` with every weight from ``checkpoint`` (ours or an official file),
    strictly, in eval mode on ``device``: what ``tools/test.py`` evaluates. No initialisation
    file is read. A checkpoint of another model is one CheckpointError line naming it."""
    if os.path.isdir(checkpoint):
        raise IsADirectoryError(f"{what} {checkpoint} is a directory; give the path of a "
                                f"checkpoint file (.pth)")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"{what} {checkpoint} does not exist")
    ckpt = safe_load(checkpoint)
    state = extract_state_dict(ckpt)
    model = build_model_without_init(cfg)
    _check_fits(model, state, ckpt, checkpoint, cfg, what)
    check_checkpoint_classes(cfg, ckpt, model, f"{what} {checkpoint}")
    load_model_weights(model, {"model": state}, strict=True, source=checkpoint)
    return model.to(device).eval()


def output_names(cfg, count: int) -> list[str]:
    """Names of a model's ``count`` outputs: the config's class list, else ``class i``."""
    names = config_class_names(cfg)
    if names is None or len(names) != count:
        return [f"class {i}" for i in range(count)]
    return list(names)


# ---------------------------------------------------------------------------------------------
# Probabilities and features
# ---------------------------------------------------------------------------------------------
def predict_spans(model: nn.Module, cfg, path: str, spans: Sequence[Span] | None,
                  device: torch.device, amp: torch.dtype | None = None,
                  text_features: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities (windows, K) of each span of ``path`` (one row for the whole video when
    ``spans`` is None), views averaged as in evaluation. TEST.BATCH_SIZE windows per forward."""
    kwargs = {} if text_features is None else {"text_features": text_features}
    net = unwrap_model(model)
    rows = []
    for chunk in _chunks(spans, cfg.TEST.BATCH_SIZE):
        views = torch.stack(span_views(cfg, path, chunk))
        rows.append(view_probabilities(net, views, device, amp, **kwargs))
    return torch.cat(rows)


def clip_features(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Pre-logit features (N, D) of clips (N, T, C, H, W): ``encode_video`` when the model has
    it (embeddings of a model that scores videos against text), else timm's
    ``forward_head(forward_features(x), pre_logits=True)`` (the pooled features)."""
    net = unwrap_model(model)
    if isinstance(net, VideoEncoder):
        return net.encode_video(clips)
    if isinstance(net, TimmFeatures):
        return net.forward_head(net.forward_features(clips), pre_logits=True)
    raise TypeError(f"{type(net).__name__} has neither encode_video nor forward_features + "
                    f"forward_head(pre_logits=True): its features cannot be extracted")


@torch.no_grad()
def feature_spans(model: nn.Module, cfg, path: str, spans: Sequence[Span] | None,
                  device: torch.device, amp: torch.dtype | None = None) -> torch.Tensor:
    """Features (windows, D) float32 of each span, averaged over the evaluation views."""
    rows = []
    for chunk in _chunks(spans, cfg.TEST.BATCH_SIZE):
        views = torch.stack(span_views(cfg, path, chunk))  # (B, V, T, C, S, S)
        b, v = views.shape[:2]
        clips = views.to(device).flatten(0, 1)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            feats = clip_features(model, clips)
        rows.append(feats.float().view(b, v, -1).mean(dim=1).cpu())
    return torch.cat(rows)


# ---------------------------------------------------------------------------------------------
# Activations: forward hooks that live only while a capture runs
# ---------------------------------------------------------------------------------------------
Tap = tuple  # (module, to_maps): to_maps(module output) -> maps (B*T, h, w, C)


def visual_taps(cfg, model: nn.Module, method: str, stage: int | None = None) -> dict:
    """``{name: (module, to_maps)}``: the modules whose outputs a visualisation reads, asked
    from the model family (``visual_taps``). ValueError when the family has none for
    ``method`` or ``stage``."""
    family = model_family(cfg.MODEL.TYPE)
    if not isinstance(family, Visualizable):
        raise ValueError(f"MODEL.TYPE {cfg.MODEL.TYPE}: its model family ({family.name}) names "
                         f"no modules to visualise")
    return family.visual_taps(unwrap_model(model), method, stage)


@contextlib.contextmanager
def capture_outputs(taps: dict) -> Iterator[dict]:
    """Record the output of every tapped module during the forwards run inside the block:
    yields ``{name: [output, ...]}`` (one entry per call). The hooks are removed on exit, so
    the model keeps no state and runs at its normal speed afterwards."""
    store: dict[str, list] = {name: [] for name in taps}
    handles = []

    def keep(name: str) -> Callable:
        def hook(module, inputs, output):
            store[name].append(output)
        return hook

    try:
        for name, (module, _) in taps.items():
            handles.append(module.register_forward_hook(keep(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def _single(store: dict, name: str) -> torch.Tensor:
    if len(store[name]) != 1:
        raise RuntimeError(f"module {name!r} ran {len(store[name])} times in one forward; "
                           f"expected once")
    return store[name][0]


@torch.no_grad()
def modulator_maps(model: nn.Module, clip: torch.Tensor, taps: dict,
                   forward_kwargs: dict | None = None) -> tuple[dict, torch.Tensor]:
    """For one clip (1, T, C, H, W): ``({name: (T', h, w) L2 norm over channels of the tapped
    output}, probabilities (K,))``. The raw tapped tensors are the modulators themselves."""
    net = unwrap_model(model)
    with capture_outputs(taps) as store:
        logits = net(clip, **(forward_kwargs or {}))
    maps = {name: to_maps(_single(store, name)).float().norm(dim=-1)
            for name, (_, to_maps) in taps.items()}
    return maps, logits.float().softmax(-1)[0]


def grad_cam(model: nn.Module, clip: torch.Tensor, taps: dict, target: int | None = None,
             forward_kwargs: dict | None = None) -> tuple[dict, torch.Tensor, int]:
    """Grad-CAM of class ``target`` (default: the top-1) for one clip (1, T, C, H, W):
    ``({name: (T', h, w) map}, probabilities (K,), target)``. The channel weights are the
    gradients of the target logit averaged over time and space (one weight per channel for the
    clip); the map is ReLU of the weighted sum of the activations. No parameter gradient is
    accumulated (torch.autograd.grad on the activations only)."""
    net = unwrap_model(model)
    with torch.enable_grad(), capture_outputs(taps) as store:
        video = clip.detach().clone().requires_grad_(True)  # activations get a graph even
        logits = net(video, **(forward_kwargs or {}))    # when every weight is frozen
        probs = logits.detach().float().softmax(-1)[0]
        if target is None:
            target = int(probs.argmax())
        outputs = {name: _single(store, name) for name in taps}
        grads = torch.autograd.grad(logits[0, target], list(outputs.values()))
    maps = {}
    for (name, activation), grad in zip(outputs.items(), grads):
        to_maps = taps[name][1]
        a, g = to_maps(activation.detach()).float(), to_maps(grad).float()
        weights = g.mean(dim=(0, 1, 2))  # (C,)
        maps[name] = torch.relu((a * weights).sum(dim=-1))
    return maps, probs, int(target)

