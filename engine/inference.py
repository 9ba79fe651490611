"""Using a trained model on any video: checkpoints, time windows, probabilities, features and
activations captured with forward hooks. (What the tools read from their command lines, the
videos an input names, ``--labels``, writable output folders, is ``tools/_inputs.py``.)

The preprocessing is evaluation's own: the frames of a video (or of a time window of it) are
sampled with ``datasets.eval_frame_indices``, decoded with ``DATA.DECODER`` and turned into the
``TEST.NUM_CLIP x TEST.NUM_CROP`` views by ``datasets.eval_clip_views``, and every video is scored
by ``engine.scoring.view_probabilities``. So the probabilities of a whole video are the ones
``tools/test.py`` writes for it.

Like the rest of the engine, nothing here names a model. Features come from the model's
capabilities (engine/contract.py: ``VideoEncoder``, else ``TimmFeatures``); which modules to hook
for a visualisation is asked from the model family (``Visualizable.visual_taps``).
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import yaml

import datasets
from common.modules import unwrap_model

from .build import build_model_without_init, check_checkpoint_classes, config_class_names
from .checkpoint import CheckpointError, checkpoint_to_cfg_yaml, extract_state_dict, \
    load_model_weights, require_checkpoint_file, safe_load
from .contract import TimmFeatures, VideoEncoder, Visualizable
from .scoring import view_probabilities
from .registry import model_family

logger = logging.getLogger(__name__)

__all__ = ["time_windows", "load_trained_model", "output_names", "video_spans", "span_views",
           "predict_spans", "clip_features", "feature_spans", "visual_taps", "capture_outputs",
           "modulator_maps", "grad_cam", "Span"]

Span = tuple[int, int]  # [start, stop) frame positions of a window


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
    require_checkpoint_file(checkpoint, what)
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

