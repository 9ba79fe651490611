"""Multi-view evaluation: per-view softmax averaged per video, gathered across processes.

Each process scores the videos its loader gives it (rank::world, nothing padded or dropped) and
keeps every score with its dataset index; the gather sorts by index and checks that every video
appears exactly once, so metrics never count a padded duplicate or miss a remainder.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os

import torch
import torch.nn as nn

from . import distributed as du
from .build import amp_dtype, build_model, slow_bf16_warning, unwrap_model
from .checkpoint import (atomic_write_text, ensure_writable_dir, load_model_weights, safe_load)
from .compile import StaticBatch, compile_clock, compile_model, is_compiled
from .logging import Progress, config_hash, setup_logging, write_config
from .metrics import classification_metrics

logger = logging.getLogger(__name__)

__all__ = ["unwrap", "evaluate", "test", "check_before_work", "write_eval_outputs"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (evaluation never runs DDP's forward); a compiled model stays."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def check_before_work(cfg, checkpoint: str | None = None) -> None:
    """Errors that must come before any model/data work: missing files, unwritable OUTPUT.

    With `checkpoint` (evaluation) that file is checked; without (training) MODEL.RESUME is.
    """
    wanted = ((checkpoint, "--checkpoint"),) if checkpoint else (
        (cfg.MODEL.RESUME, "MODEL.RESUME (--resume)"),)
    for path, key in wanted:
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{key}: checkpoint {path} does not exist")
    ensure_writable_dir(cfg.OUTPUT)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, amp: torch.dtype | None = None,
             desc: str = "Test", print_freq: int = 50, show_progress: bool = True) -> dict:
    """Score every video of `loader` (batches of (views (B,V,T,C,H,W), label, index)).

    Per view: logits -> softmax; averaged over the V views (spec 4.6: sum and mean rank the
    same). Returns {"metrics": top1/top5/mean_class_acc/per_class_acc/num_samples,
    "scores": (N, K) float, "labels": (N,), "indices": (N,), "compile_s"} sorted by dataset
    index, identical on every rank. A compiled ``model`` (engine.compile) sees one batch shape:
    the last, smaller batch is padded; its compile time is logged and returned as compile_s.
    """
    net = unwrap(model)
    was_training = unwrap_model(net).training
    net.eval()
    static = StaticBatch(is_compiled(net))
    clock = compile_clock()
    compile_before = clock.seconds
    scores, labels, indices = [], [], []
    views_per_video = None
    progress = Progress(len(loader), desc, print_freq,
                        enabled=show_progress and du.is_main_process())
    for step, (views, label, index) in enumerate(loader):
        if views.dim() == 5:  # a loader that yields single clips (B,T,C,H,W): one view
            views = views.unsqueeze(1)
        b, v = views.shape[:2]
        views_per_video = v
        clips, real = static.pad(views.to(device, non_blocking=True).flatten(0, 1))
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = net(clips)[:real]
        probs = logits.float().softmax(dim=-1).view(b, v, -1).mean(dim=1)
        scores.append(probs.cpu())
        labels.append(torch.as_tensor(label).view(-1).long().cpu())
        indices.append(torch.as_tensor(index).view(-1).long().cpu())
        progress.update(step)
    progress.close()
    compile_s = clock.seconds - compile_before
    if compile_s > 0:
        logger.info("compiled the evaluation step in %.1f s (batch of %d clips)", compile_s,
                    static.size)
    if was_training:
        net.train()
    local = {
        "scores": torch.cat(scores) if scores else None,
        "labels": torch.cat(labels) if labels else torch.empty(0, dtype=torch.long),
        "indices": torch.cat(indices) if indices else torch.empty(0, dtype=torch.long),
        "views": views_per_video,
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
    metrics = classification_metrics(all_scores, all_labels, all_scores.shape[1])
    metrics["views"] = next((p["views"] for p in parts if p["views"]), None)
    return {"metrics": metrics, "scores": all_scores, "labels": all_labels,
            "indices": all_indices, "compile_s": compile_s}


def _predictions_csv(result: dict, dataset) -> str:
    samples = getattr(dataset, "samples", None)
    k = min(5, result["scores"].shape[1])
    top = result["scores"].topk(k, dim=1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "path", "label", "correct"]
                    + [f"pred{i + 1}" for i in range(k)] + [f"score{i + 1}" for i in range(k)])
    for row, index in enumerate(result["indices"].tolist()):
        path = samples[index][0] if samples is not None else ""
        label = int(result["labels"][row])
        preds = top.indices[row].tolist()
        writer.writerow([index, path, label, int(preds[0] == label)] + preds
                        + [f"{s:.6f}" for s in top.values[row].tolist()])
    return out.getvalue()


def write_eval_outputs(cfg, result: dict, dataset, checkpoint: str | None,
                       output_dir: str | None = None) -> dict:
    """OUTPUT/eval_results.json and OUTPUT/predictions.csv, both written atomically."""
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
        "per_class_acc": ({name: acc for name, acc in zip(classes, per_class)}
                          if classes is not None and len(classes) == len(per_class)
                          else per_class),
    }
    atomic_write_text(os.path.join(output_dir, "eval_results.json"),
                      json.dumps(summary, indent=2) + "\n")
    atomic_write_text(os.path.join(output_dir, "predictions.csv"),
                      _predictions_csv(result, dataset))
    return summary


def _weights_from_checkpoint_only(cfg):
    """The config to build an evaluated model from: every weight comes from the checkpoint.

    Initialisation files (2-D ImageNet FocalNet, the CLIP backbone) are neither needed nor
    required to exist when a full checkpoint is loaded strictly afterwards.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.EVAL_MODE = True
    cfg.TRAIN.PRETRAINED_PATH = ""
    cfg.MODEL.VITA.BACKBONE_PATH = ""
    cfg.freeze()
    return cfg


def test(cfg, checkpoint: str | None) -> dict:
    """Evaluate `checkpoint` on the test split with TEST.NUM_CLIP x TEST.NUM_CROP views.

    Writes OUTPUT/eval_results.json and OUTPUT/predictions.csv (rank 0); returns the summary
    dict (top1, top5, mean_class_acc, num_videos, per_class_acc, ...).
    """
    from datasets import build_loader

    if not checkpoint:
        raise ValueError("no checkpoint given: pass --checkpoint PATH (or --resume PATH with "
                         "--eval)")
    dist_info = du.init_distributed(cfg)
    check_before_work(cfg, checkpoint)
    setup_logging(cfg.OUTPUT, dist_info.rank)
    ckpt = safe_load(checkpoint)
    if dist_info.is_main:
        write_config(cfg.OUTPUT, cfg)
    loader = build_loader(cfg, "test")  # before the model: it may read the dataset's class list
    model = build_model(_weights_from_checkpoint_only(cfg)).to(dist_info.device)
    # Strict for every layout: evaluating with some weights left at random init would be a
    # silent wrong answer (the reference's strict=False hid such mismatches).
    load_model_weights(model, ckpt, strict=True, source=checkpoint)
    logger.info("testing %s on %d videos x %d clips x %d crops, %d process(es)", checkpoint,
                len(loader.dataset), cfg.TEST.NUM_CLIP, cfg.TEST.NUM_CROP, dist_info.world_size)
    if slow_bf16_warning(cfg, dist_info.device):
        logger.warning(slow_bf16_warning(cfg, dist_info.device))
    result = evaluate(compile_model(model, cfg.TEST.COMPILE), loader, dist_info.device,
                      amp=amp_dtype(cfg), print_freq=cfg.PRINT_FREQ)
    m = result["metrics"]
    logger.info("top-1 %.2f  top-5 %.2f  mean class %.2f  (%d videos)", m["top1"], m["top5"],
                m["mean_class_acc"], m["num_samples"])
    summary = None
    if dist_info.is_main:
        summary = write_eval_outputs(cfg, result, loader.dataset, checkpoint)
        logger.info("wrote %s", os.path.join(cfg.OUTPUT, "eval_results.json"))
    summary = du.broadcast_object(summary)
    return summary
