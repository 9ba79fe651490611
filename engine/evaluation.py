"""Multi-view evaluation: per-view softmax averaged per video, gathered across processes.

Each process scores the videos its loader gives it (rank::world, nothing padded or dropped) and
keeps every score with its dataset index; the gather sorts by index and checks that every video
appears exactly once, so metrics never count a padded duplicate or miss a remainder.

Videos that could not be decoded (the dataset's ``bad_indices()``, gathered from every process)
are left out of the metrics and reported by count and path (TEST.BAD_VIDEO_POLICY exclude); a
metric is never computed over a stand-in video.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os

import numpy as np
import torch
import torch.nn as nn

from common.fileio import atomic_write_bytes, atomic_write_text
from common.modules import unwrap_model

from . import distributed as du
from .build import amp_dtype, build_model_without_init, check_checkpoint_classes, \
    slow_bf16_warning
from .checkpoint import ensure_writable_dir, load_model_weights, safe_load
from .compile import StaticBatch, compile_clock, compile_model, is_compiled
from .contract import TextEncoder
from .guards import no_empty_folders_on_failure, require_finite
from .logging import Progress, config_hash, setup_logging, start_log_file
from .metrics import classification_metrics
from .scoring import view_probabilities

logger = logging.getLogger(__name__)

__all__ = ["evaluate", "class_text_features", "view_probabilities", "test", "check_before_work",
           "write_eval_outputs", "bad_video_report", "log_metrics", "SCORES_FILE"]

SCORES_FILE = "scores.npy"  # (N, C) float32 averaged probabilities, predictions.csv row order


def check_before_work(cfg, checkpoint: str | None = None) -> None:
    """Errors that must come before any model/data work: missing files, unwritable OUTPUT.

    With `checkpoint` (evaluation) that file is checked; without (training) MODEL.RESUME is.
    """
    wanted = ((checkpoint, "--checkpoint"),) if checkpoint else (
        (cfg.MODEL.RESUME, "MODEL.RESUME (--resume)"),)
    for path, key in wanted:
        if path and os.path.isdir(path):
            raise IsADirectoryError(f"{key}: {path} is a directory; give the path of a "
                                    f"checkpoint file (.pth)")
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{key}: checkpoint {path} does not exist")
    ensure_writable_dir(cfg.OUTPUT)


@torch.no_grad()
def class_text_features(model: nn.Module, device: torch.device,
                        amp: torch.dtype | None = None) -> torch.Tensor | None:
    """``model.encode_text()`` -- the class text features of a model that scores videos against
    text -- computed once under no_grad and the run's autocast, to pass as
    ``model(video, text_features=...)`` for every batch; None for a model without it (a fixed
    classifier head). The model is expected on ``device`` and in eval mode."""
    net = unwrap_model(model)
    if not isinstance(net, TextEncoder):
        return None
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        return net.encode_text()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, amp: torch.dtype | None = None,
             desc: str = "Test", print_freq: int = 50, show_progress: bool = True,
             text_features: torch.Tensor | None = None) -> dict:
    """Score every video of `loader` (batches of (views (B,V,T,C,H,W), label, index)).

    Per view: logits -> softmax; averaged over the V views (spec 4.6: sum and mean rank the
    same). A model with ``encode_text`` scores against ``text_features`` [C, E] (default: its
    own classes, encoded once for the whole run). Returns {"metrics":
    top1/top5/mean_class_acc/per_class_acc/num_samples, "scores": (N, K) float, "labels": (N,),
    "indices": (N,), "compile_s"} sorted by dataset index, identical on every rank. A compiled
    ``model`` (engine.compile) sees one batch shape: the last, smaller batch is padded; its
    compile time is logged and returned as compile_s.
    """
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    bare = unwrap_model(net)  # called through the compiled wrapper; eval()/train() on the model
    was_training = bare.training
    bare.eval()
    if text_features is None:
        text_features = class_text_features(bare, device, amp)
    forward_kwargs = {} if text_features is None else {"text_features": text_features}
    static = StaticBatch(is_compiled(net))
    clock = compile_clock()
    compile_before = clock.seconds
    scores, labels, indices = [], [], []
    views_per_video = None
    progress = Progress(len(loader), desc, print_freq,
                        enabled=show_progress and du.is_main_process())
    for step, (views, label, index) in enumerate(loader):
        views_per_video = views.shape[1] if views.dim() == 6 else 1
        scores.append(view_probabilities(net, views, device, amp, static=static,
                                         **forward_kwargs))
        labels.append(torch.as_tensor(label).view(-1).long().cpu())
        indices.append(torch.as_tensor(index).view(-1).long().cpu())
        progress.update(step)
    progress.close()
    compile_s = clock.seconds - compile_before
    if compile_s > 0:
        logger.info("compiled the evaluation step in %.1f s (batch of %d clips)", compile_s,
                    static.size)
    if was_training:
        bare.train()
    dataset = getattr(loader, "dataset", None)
    local = {
        "scores": torch.cat(scores) if scores else None,
        "labels": torch.cat(labels) if labels else torch.empty(0, dtype=torch.long),
        "indices": torch.cat(indices) if indices else torch.empty(0, dtype=torch.long),
        "views": views_per_video,
        "bad": list(dataset.bad_indices()) if hasattr(dataset, "bad_indices") else [],
    }
    parts = du.all_gather_objects(local)
    all_scores = torch.cat([p["scores"] for p in parts if p["scores"] is not None])
    all_labels = torch.cat([p["labels"] for p in parts])
    all_indices = torch.cat([p["indices"] for p in parts])
    order = all_indices.argsort()
    all_scores, all_labels, all_indices = all_scores[order], all_labels[order], all_indices[order]
    if all_indices.unique().numel() != all_indices.numel():
        raise RuntimeError("evaluation saw some videos more than once across processes: the "
                           "val/test sampler must give each rank indices rank::world_size "
                           "without padding")
    expected = len(loader.dataset) if hasattr(loader, "dataset") else None
    if expected is not None and all_indices.numel() != expected:
        raise RuntimeError(f"evaluation scored {all_indices.numel()} videos but the dataset has "
                           f"{expected}: the val/test loader must not drop or pad samples")
    bad = sorted({int(i) for p in parts for i in p["bad"]})
    readable = ~torch.isin(all_indices, torch.tensor(bad, dtype=torch.long))
    # NaN scores would still rank (argmax of NaN is 0) into a plausible accuracy: refuse them,
    # on every rank alike (the gathered scores are the same everywhere)
    require_finite(all_scores[readable], "probabilities", f"evaluation ({desc})")
    metrics = classification_metrics(all_scores[readable], all_labels[readable],
                                     all_scores.shape[1])
    metrics["views"] = next((p["views"] for p in parts if p["views"]), None)
    metrics["bad_videos"] = len(bad)
    metrics["num_listed"] = int(all_indices.numel())
    return {"metrics": metrics, "scores": all_scores, "labels": all_labels,
            "indices": all_indices, "bad_indices": bad, "readable": readable,
            "compile_s": compile_s}


def _predictions_csv(result: dict, dataset) -> str:
    """One row per listed video; an unreadable one keeps its label and has empty predictions."""
    samples = getattr(dataset, "samples", None)
    k = min(5, result["scores"].shape[1])
    top = result["scores"].topk(k, dim=1)
    bad = set(result.get("bad_indices", ()))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "path", "label", "correct"]
                    + [f"pred{i + 1}" for i in range(k)] + [f"score{i + 1}" for i in range(k)])
    for row, index in enumerate(result["indices"].tolist()):
        path = samples[index][0] if samples is not None else ""
        label = int(result["labels"][row])
        if index in bad:
            writer.writerow([index, path, label, ""] + [""] * (2 * k))
            continue
        preds = top.indices[row].tolist()
        writer.writerow([index, path, label, int(preds[0] == label)] + preds
                        + [f"{s:.6f}" for s in top.values[row].tolist()])
    return out.getvalue()


def _per_class(classes, per_class: list) -> dict | list:
    """Per-class accuracy keyed by class name (a name listed twice keeps both, with its index)."""
    if classes is None or len(classes) != len(per_class):
        return per_class
    counts = {name: list(classes).count(name) for name in classes}
    return {(name if counts[name] == 1 else f"{name} ({i})"): acc
            for i, (name, acc) in enumerate(zip(classes, per_class))}


def bad_video_report(result: dict, dataset, cfg) -> dict:
    """The summary fields about unreadable videos: count, paths and what was done with them."""
    samples = getattr(dataset, "samples", None)
    bad = list(result.get("bad_indices", ()))
    return {"bad_videos": len(bad),
            "bad_video_paths": [samples[i][0] if samples is not None else i for i in bad],
            "bad_video_policy": cfg.TEST.BAD_VIDEO_POLICY,
            "num_listed": result["metrics"].get("num_listed", result["metrics"]["num_samples"])}


def write_eval_outputs(cfg, result: dict, dataset, checkpoint: str | None,
                       output_dir: str | None = None) -> dict:
    """OUTPUT/eval_results.json, OUTPUT/predictions.csv and OUTPUT/scores.npy (the averaged
    probabilities (N, C) float32, one row per predictions.csv row, in the same order; NaN for a
    video that could not be decoded), each written atomically."""
    output_dir = output_dir or cfg.OUTPUT
    metrics = result["metrics"]
    classes = getattr(dataset, "classes", None)
    per_class = metrics["per_class_acc"]
    summary = {
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "mean_class_acc": metrics["mean_class_acc"],
        "num_videos": metrics["num_samples"],
        "views": {"num_clip": cfg.TEST.NUM_CLIP, "num_crop": cfg.TEST.NUM_CROP,
                  "per_video": metrics.get("views")},
        "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
        "config_hash": config_hash(cfg),
        "model": cfg.MODEL.TYPE,
        "dataset": cfg.DATA.DATASET,
        **bad_video_report(result, dataset, cfg),
        "per_class_acc": _per_class(classes, per_class),
    }
    atomic_write_text(os.path.join(output_dir, "eval_results.json"),
                      json.dumps(summary, indent=2) + "\n")
    atomic_write_text(os.path.join(output_dir, "predictions.csv"),
                      _predictions_csv(result, dataset))
    scores = result["scores"].float().clone()
    if "readable" in result:  # an unreadable video has no scores, not those of blank views
        scores[~result["readable"]] = float("nan")
    buffer = io.BytesIO()
    np.save(buffer, scores.numpy(), allow_pickle=False)
    atomic_write_bytes(os.path.join(output_dir, SCORES_FILE), buffer.getvalue())
    return summary


def log_metrics(metrics: dict, what: str = "") -> None:
    """The result line, and a warning when unreadable videos were left out of it."""
    logger.info("%stop-1 %.2f  top-5 %.2f  mean class %.2f  (%d videos)", what, metrics["top1"],
                metrics["top5"], metrics["mean_class_acc"], metrics["num_samples"])
    if metrics.get("bad_videos"):
        logger.warning("%d of %d videos could not be decoded and are left out of these metrics "
                       "(TEST.BAD_VIDEO_POLICY exclude; their paths: bad_video_paths in "
                       "eval_results.json)", metrics["bad_videos"], metrics["num_listed"])


def _write_eval_config(cfg) -> str:
    """OUTPUT/config.yaml, unless OUTPUT holds a training run (run_info.json) with another
    config.yaml, which an evaluation must not replace: then OUTPUT/eval_config.yaml."""
    path = os.path.join(cfg.OUTPUT, "config.yaml")
    if os.path.isfile(path) and os.path.isfile(os.path.join(cfg.OUTPUT, "run_info.json")):
        with open(path, "r", encoding="utf-8") as f:
            if f.read() != cfg.dump():
                path = os.path.join(cfg.OUTPUT, "eval_config.yaml")
    atomic_write_text(path, cfg.dump())
    return path


def test(cfg, checkpoint: str | None, runtime: str | None = None) -> dict:
    """Evaluate `checkpoint` on the test split with TEST.NUM_CLIP x TEST.NUM_CROP views.
    ``runtime`` (torch, onnxruntime, openvino; None: by the file's kind) is what runs the model
    (engine/runtime.py): an exported file, or the checkpoint exported first.

    Writes OUTPUT/eval_results.json, OUTPUT/predictions.csv and OUTPUT/scores.npy (rank 0);
    returns the summary dict (top1, top5, mean_class_acc, num_videos, bad_videos, per_class_acc,
    ...). OUTPUT is locked for the run (engine/runlock.py), and nothing is written there before
    the checkpoint has loaded into the model.
    """
    from .runlock import lock_output

    if not checkpoint:
        raise ValueError("no checkpoint given: pass --checkpoint PATH (or --resume PATH with "
                         "--eval)")
    dist_info = du.init_distributed(cfg)
    with no_empty_folders_on_failure(cfg.OUTPUT):
        check_before_work(cfg, checkpoint)
        lock = lock_output(cfg.OUTPUT, dist_info, "evaluation")
        try:
            return _test_locked(cfg, checkpoint, dist_info, runtime)
        finally:
            if lock is not None:
                lock.release()


def _test_locked(cfg, checkpoint: str, dist_info, runtime: str | None = None) -> dict:
    from datasets import build_loader

    from .runtime import is_exported, load_inference_model

    setup_logging(cfg.OUTPUT, dist_info.rank, defer_file=True)
    on_runtime = is_exported(checkpoint) or runtime not in (None, "torch")
    ckpt = None if on_runtime else safe_load(checkpoint)
    loader = build_loader(cfg, "test")  # before the model: it may read the dataset's class list
    if on_runtime:  # an exported graph, or the checkpoint exported for the runtime
        model = load_inference_model(cfg, checkpoint, runtime, dist_info.device)
    else:
        # every weight comes from the checkpoint: initialisation files are neither read nor
        # required to exist
        model = build_model_without_init(cfg).to(dist_info.device)
        # Strict for every layout: evaluating with some weights left at random init would be a
        # silent wrong answer (the reference's strict=False hid such mismatches).
        load_model_weights(model, ckpt, strict=True, source=checkpoint)
        check_checkpoint_classes(cfg, ckpt, model, f"--checkpoint {checkpoint}")
    if dist_info.is_main:  # the checkpoint fits: from here on the run writes into OUTPUT
        start_log_file()
        _write_eval_config(cfg)
    logger.info("testing %s on %d videos x %d clips x %d crops, %d process(es)", checkpoint,
                len(loader.dataset), cfg.TEST.NUM_CLIP, cfg.TEST.NUM_CROP, dist_info.world_size)
    slow_bf16 = slow_bf16_warning(cfg, dist_info.device)
    if slow_bf16:
        logger.warning(slow_bf16)
    result = evaluate(model if on_runtime else compile_model(model, cfg.TEST.COMPILE), loader,
                      dist_info.device,
                      amp=amp_dtype(cfg), print_freq=cfg.PRINT_FREQ)
    log_metrics(result["metrics"])
    summary = None
    if dist_info.is_main:
        summary = write_eval_outputs(cfg, result, loader.dataset, checkpoint)
        logger.info("wrote %s, predictions.csv and %s beside it (tools/analyze.py reads them)",
                    os.path.join(cfg.OUTPUT, "eval_results.json"), SCORES_FILE)
    summary = du.broadcast_object(summary)
    return summary
