"""The training loop: one epoch, the epoch loop with validation/checkpoints, and resume.

Entry points: ``train(cfg)`` (tools/train.py) and ``test(cfg, checkpoint)`` (tools/test.py,
re-exported from engine.evaluation); ``train_one_epoch`` for callers with their own loop.
Turning errors into exit codes is the entry points' business (tools/_cli.py).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from common.fileio import atomic_write_text, remove_stale_temp_files

from . import distributed as du
from .build import (amp_dtype, build_criterion, build_grad_scaler, build_model, build_optimizer,
                    build_scheduler, config_class_names, count_parameters, scaled_learning_rates,
                    slow_bf16_warning, total_updates, training_epochs, wrap_model)
from .checkpoint import (FORMAT, CheckpointError, build_checkpoint, capture_rng_state,
                         find_resume_checkpoint, load_model_weights, restore_rng_state, safe_load,
                         save_checkpoint)
from .compile import StaticBatch, compile_clock, compile_model, is_compiled
from .config import ConfigError
from .evaluation import check_before_work, evaluate, test
from .logging import (Progress, TensorBoardWriter, memory_mb, setup_logging, start_log_file,
                      write_config, write_run_info)

logger = logging.getLogger(__name__)

__all__ = ["train", "test", "evaluate", "throughput", "train_one_epoch", "TrainState",
           "NonFiniteLossError", "TrainingInterrupted", "seed_everything", "trim_metrics",
           "OOM_ADVICE"]

OOM_ADVICE = ("out of memory. Lower the memory per step: reduce DATA.BATCH_SIZE (and raise "
              "TRAIN.ACCUMULATION_STEPS to keep the effective batch), set TRAIN.USE_CHECKPOINT "
              "True (activation checkpointing), TRAIN.AMP bf16 or fp16, or fewer DATA.NUM_FRAMES "
              "(e.g. --opts DATA.BATCH_SIZE 4 TRAIN.ACCUMULATION_STEPS 2)")


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN/inf under TRAIN.NAN_POLICY stop."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where the run stopped and how to go on."""


@dataclass
class TrainState:
    epoch: int = 0  # the epoch being (or about to be) trained
    iteration: int = 0  # optimiser updates done since the start of training
    max_accuracy: float = 0.0
    skipped_steps: int = 0  # updates skipped under TRAIN.NAN_POLICY skip
    batch: int = 0  # the batch of the epoch being trained (what an interruption reports)
    saved_epoch: int | None = None  # the epoch of the newest checkpoint in OUTPUT


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _apply_mixup(mixup, video: torch.Tensor, label: torch.Tensor):
    """timm Mixup on (B, T, C, H, W): frames folded into channels, so one box covers all frames."""
    if video.dim() == 5:
        b, t, c, h, w = video.shape
        mixed, target = mixup(video.reshape(b, t * c, h, w), label)
        return mixed.reshape(b, t, c, h, w), target
    return mixup(video, label)


def trim_metrics(path: str, epoch: int, restart: dict) -> int:
    """Before a restarted run appends to OUTPUT/metrics.jsonl: drop the records of epochs it will
    train again (``epoch`` and later; a kill leaves those of the unfinished epoch) and lines cut
    by a kill, then add a ``restart`` record. Returns the number of records dropped."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                dropped += 1
                continue
            if isinstance(record.get("epoch"), int) and record.get("type") != "restart" \
                    and record["epoch"] >= epoch:
                dropped += 1
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    kept.append(json.dumps({"type": "restart", "epoch": epoch, "dropped_records": dropped,
                            **restart}) + "\n")
    atomic_write_text(path, "".join(kept))
    return dropped


class _JsonLines:
    """OUTPUT/metrics.jsonl on rank 0: one JSON record per line (iterations, epochs, validation)."""

    def __init__(self, path: str | None):
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _nonfinite(what: str, value: float, epoch: int, index: int, num_iters: int, policy: str,
               state: TrainState) -> None:
    where = f"epoch {epoch} iteration {index}/{num_iters} (update {state.iteration})"
    if policy == "stop":
        raise NonFiniteLossError(
            f"non-finite {what} ({value}) at {where}: training stopped (TRAIN.NAN_POLICY stop). "
            f"Lower TRAIN.BASE_LR, keep TRAIN.CLIP_GRAD > 0, try TRAIN.AMP bf16/off, or set "
            f"TRAIN.NAN_POLICY skip to skip such steps.")
    state.skipped_steps += 1
    logger.warning("non-finite %s (%s) at %s: update skipped (TRAIN.NAN_POLICY skip; %d skipped "
                   "so far)", what, value, where, state.skipped_steps)


def _optimizer_step(cfg, optimizer, scaler, params, epoch, index, num_iters,
                    state: TrainState) -> float | None:
    """Unscale, clip once, step (skipped on a non-finite norm); returns the gradient norm."""
    grad_norm = None
    if cfg.TRAIN.CLIP_GRAD > 0:
        scaler.unscale_(optimizer)  # clip the true gradients, once per update
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.TRAIN.CLIP_GRAD))
    if grad_norm is not None and not math.isfinite(grad_norm) and not scaler.is_enabled():
        # gradients are identical on every rank after the all-reduce: a consistent decision
        _nonfinite("gradient norm", grad_norm, epoch, index, num_iters, cfg.TRAIN.NAN_POLICY,
                   state)
        return grad_norm
    scaler.step(optimizer)  # an fp16 scaler skips inf/NaN steps itself and lowers its scale
    scaler.update()
    return grad_norm


def train_one_epoch(cfg, model: nn.Module, loader, optimizer, scheduler, scaler, criterion,
                    device: torch.device, state: TrainState, mixup=None, tb=None, log=None,
                    show_progress: bool = True, max_updates: int | None = None) -> dict:
    """One pass over `loader` with accumulation, AMP, clipping and the NaN policy.

    The LR for update t (global index from 0) is set by ``scheduler.step_update(t)`` before the
    update; t runs over optimiser updates, EPOCHS * ceil(len(loader) / ACCUMULATION_STEPS).
    With ``max_updates`` (TRAIN.TOTAL_STEPS) the pass stops before update ``max_updates``.
    A compiled ``model`` (engine.compile) sees one batch shape (smaller batches are padded) and
    its compile time is logged and returned as ``compile_s``, outside the iteration times.
    """
    model.train()
    epoch = state.epoch
    accum = max(1, cfg.TRAIN.ACCUMULATION_STEPS)
    num_iters = len(loader)
    steps_per_epoch = math.ceil(num_iters / accum)
    dtype = amp_dtype(cfg)
    world = du.get_world_size()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    progress = Progress(num_iters, f"Train epoch {epoch}", cfg.PRINT_FREQ,
                        enabled=show_progress and du.is_main_process())
    group_bad = False
    loss_sum, loss_count, clips, skipped_at_start = 0.0, 0, 0, state.skipped_steps
    static = StaticBatch(is_compiled(model))
    clock = compile_clock()
    compile_start = clock.seconds
    epoch_start = end = time.time()
    for index, batch in enumerate(loader):
        state.batch = index
        video, label = batch[0], batch[1]
        data_time = time.time() - end
        compile_before = clock.seconds
        video = video.to(device, non_blocking=True)
        label = label.to(device, non_blocking=True)
        group_start = (index // accum) * accum
        group_size = min(accum, num_iters - group_start)
        last_micro = index + 1 == group_start + group_size
        update = epoch * steps_per_epoch + index // accum
        if max_updates is not None and update >= max_updates:
            break  # a step-based run ends inside its last pass over the data
        if index == group_start:
            scheduler.step_update(update)
        target = label
        if mixup is not None:
            video, target = _apply_mixup(mixup, video, label)
        sync = nullcontext() if last_micro or not hasattr(model, "no_sync") else model.no_sync()
        grad_norm = None
        try:
            with sync:
                with torch.autocast(device.type, dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    padded, real = static.pad(video)
                    logits = model(padded)[:real]
                loss = criterion(logits.float(), target)
                # averaged over processes: every rank takes the same NaN decision (no DDP hang)
                loss_value = float(du.all_reduce_mean(loss.detach()))
                if not math.isfinite(loss_value):
                    _nonfinite("loss", loss_value, epoch, index, num_iters, cfg.TRAIN.NAN_POLICY,
                               state)
                    group_bad = True
                elif not group_bad:
                    scaler.scale(loss / group_size).backward()
            if last_micro:
                if not group_bad:
                    grad_norm = _optimizer_step(cfg, optimizer, scaler, params, epoch, index,
                                                num_iters, state)
                optimizer.zero_grad(set_to_none=True)
                group_bad = False
                state.iteration += 1
        except RuntimeError as err:
            if _is_oom(err):
                raise RuntimeError(f"epoch {epoch} iteration {index}: {OOM_ADVICE}") from err
            raise
        if math.isfinite(loss_value):
            loss_sum += loss_value
            loss_count += 1
        compile_s = clock.seconds - compile_before
        batch_time = time.time() - end - compile_s
        if compile_s > 0:
            logger.info("compiled the training step in %.1f s (TRAIN.COMPILE %s, batch %d; not "
                        "counted in the iteration times)", compile_s, cfg.TRAIN.COMPILE,
                        static.size)
            if log is not None:
                log.write({"type": "compile", "phase": "train", "epoch": epoch, "iter": index,
                           "mode": cfg.TRAIN.COMPILE, "seconds": compile_s})
        clips += video.shape[0] * world
        lr = optimizer.param_groups[0]["lr"]
        values = {"loss": loss_value, "lr": lr, "data_time": data_time,
                  "clips_per_s": video.shape[0] * world / max(batch_time, 1e-9)}
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        progress.update(index, loss=loss_value, lr=lr, data=data_time, time=batch_time)
        if log is not None:
            log.write({"type": "train_iter", "epoch": epoch, "iter": index, "update": update,
                       "loss": loss_value, "lr": lr})
        if tb is not None and du.is_main_process():
            step = epoch * num_iters + index
            tb.scalars(values, step, prefix="train/")
            if (index + 1) % cfg.PRINT_FREQ == 0 or index + 1 == num_iters:
                tb.scalars({"memory_mb": memory_mb(device)}, step, prefix="train/")
        end = time.time()
        state.batch = index + 1  # the next one is in progress (loading) from here on
    progress.close()
    elapsed = time.time() - epoch_start
    compiling = clock.seconds - compile_start
    return {"epoch": epoch, "loss": loss_sum / max(loss_count, 1), "iterations": state.batch,
            "time_s": elapsed, "compile_s": compiling,
            "clips_per_s": clips / max(elapsed - compiling, 1e-9),
            "lr": optimizer.param_groups[0]["lr"],
            "skipped_steps": state.skipped_steps - skipped_at_start,
            "memory_mb": memory_mb(device)}


# ---------------------------------------------------------------------------------------------
# The epoch loop
# ---------------------------------------------------------------------------------------------
def _configure_determinism(cfg, device: torch.device) -> None:
    if cfg.TRAIN.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _resume_checkpoint(cfg) -> tuple[str | None, dict | None]:
    """MODEL.RESUME, or OUTPUT's newest valid checkpoint under AUTO_RESUME, read before any
    other work (an unreadable or unsafe file stops the run at once)."""
    if cfg.MODEL.RESUME:
        return cfg.MODEL.RESUME, safe_load(cfg.MODEL.RESUME)
    if cfg.TRAIN.AUTO_RESUME:
        return find_resume_checkpoint(cfg.OUTPUT)
    return None, None


def _resume(cfg, model, optimizer, scheduler, scaler, state: TrainState, dist_info,
            path: str | None, ckpt: dict | None) -> str | None:
    """Restore the training state from ``ckpt`` (read by _resume_checkpoint); returns its path
    when training state was restored."""
    if ckpt is None:
        return None
    if ckpt.get("format") != FORMAT:
        load_model_weights(model, ckpt, strict=False, source=path)
        logger.warning("%s is not one of this engine's checkpoints (a reference one?): only the "
                       "model weights were loaded; training starts at epoch 0 with a fresh "
                       "optimiser and schedule", path)
        return None
    try:
        load_model_weights(model, ckpt, strict=True, source=path)
    except CheckpointError as err:
        if cfg.MODEL.RESUME:
            raise
        raise CheckpointError(f"OUTPUT {cfg.OUTPUT} holds a run of another model config, "
                              f"which this run would resume: {err}. Choose another OUTPUT "
                              f"(--output DIR)") from err
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler") is not None and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    state.epoch = int(ckpt["epoch"]) + 1
    state.iteration = int(ckpt["iteration"])
    state.max_accuracy = float(ckpt["max_accuracy"])
    state.skipped_steps = int(ckpt.get("skipped_steps", 0))
    rng = ckpt.get("rng") or []
    if len(rng) == dist_info.world_size:
        restore_rng_state(rng[dist_info.rank])
    else:
        logger.warning("%s was written by %d processes, this run has %d: random states are "
                       "re-seeded, so the run will not repeat the original bit for bit",
                       path, len(rng), dist_info.world_size)
        seed_everything(cfg.SEED + dist_info.rank + 1000 * state.epoch)
    state.saved_epoch = state.epoch - 1
    logger.info("resumed from %s: epoch %d done, %d updates, best top-1 %.2f", path,
                state.epoch - 1, state.iteration, state.max_accuracy)
    return path


def _loader_set_epoch(loader, epoch: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    batch_sampler = getattr(loader, "batch_sampler", None)
    if hasattr(batch_sampler, "set_epoch"):
        batch_sampler.set_epoch(epoch)
    dataset = getattr(loader, "dataset", None)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def _bad_videos(loader) -> int:
    dataset = getattr(loader, "dataset", None)
    count = dataset.bad_video_count() if hasattr(dataset, "bad_video_count") else 0
    return int(du.all_reduce_sum(torch.tensor(float(count))).item())


def train(cfg) -> dict:
    """Train per the config (DDP when launched by torchrun); returns the last/best metrics.

    Writes OUTPUT/config.yaml, run_info.json, log.txt, metrics.jsonl, tb/, latest.pth,
    ckpt_epoch_{e}.pth (every SAVE_FREQ epochs) and best.pth (highest validation top-1).
    OUTPUT is locked for the run (engine/runlock.py): a second run on it is refused. Nothing is
    written into OUTPUT before the data, the model and the checkpoint to resume from have
    loaded, so a run refused by those checks leaves a finished run's files as they were.
    """
    from .runlock import lock_output

    if cfg.EVAL_MODE:
        checkpoint = cfg.MODEL.RESUME or os.path.join(cfg.OUTPUT, "best.pth")
        return test(cfg, checkpoint)
    if cfg.TRAIN.EPOCHS < 1 and cfg.TRAIN.TOTAL_STEPS < 1:
        raise ConfigError(f"key TRAIN.EPOCHS: {cfg.TRAIN.EPOCHS} epochs leave nothing to train; "
                          f"set it to 1 or more (to evaluate a checkpoint use tools/test.py)")
    dist_info = du.init_distributed(cfg)
    _refuse_an_evaluation_folder(cfg)
    check_before_work(cfg)
    lock = lock_output(cfg.OUTPUT, dist_info, "training")
    try:
        return _train_locked(cfg, dist_info)
    finally:
        if lock is not None:
            lock.release()


def _refuse_an_evaluation_folder(cfg) -> None:
    """An OUTPUT that holds an evaluation (tools/test.py's eval_results.json, no training run)
    of another config is refused: training there would write over the config.yaml that
    describes those results."""
    config = os.path.join(cfg.OUTPUT, "config.yaml")
    if not os.path.isfile(os.path.join(cfg.OUTPUT, "eval_results.json")) or \
            not os.path.isfile(config) or os.path.isfile(os.path.join(cfg.OUTPUT, "run_info.json")):
        return
    with open(config, encoding="utf-8", errors="replace") as f:
        if f.read() == cfg.dump():
            return
    raise ConfigError(f"OUTPUT {cfg.OUTPUT} holds an evaluation (eval_results.json) made with "
                      f"another config; training there would overwrite its config.yaml: choose "
                      f"another OUTPUT")


def _start_run_files(cfg, dist_info, state: TrainState, resumed_from: str | None) -> None:
    """The run is accepted: log.txt, config.yaml, run_info.json (history kept) and
    metrics.jsonl (records of the epochs to train again dropped), on rank 0."""
    if not dist_info.is_main:
        return
    start_log_file()
    remove_stale_temp_files(cfg.OUTPUT)  # half-written files of a killed run
    write_config(cfg.OUTPUT, cfg)
    restart = {"resumed_from": os.path.abspath(resumed_from) if resumed_from else None,
               "start_epoch": state.epoch, "iteration": state.iteration}
    write_run_info(cfg.OUTPUT, cfg, dist_info, restart=restart)
    dropped = trim_metrics(os.path.join(cfg.OUTPUT, "metrics.jsonl"), state.epoch,
                           {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **restart})
    if dropped:
        logger.info("metrics.jsonl: dropped %d records of epochs from %d on, which this run "
                    "trains again", dropped, state.epoch)


def _train_locked(cfg, dist_info) -> dict:
    from datasets import build_loader, build_mixup

    # log.txt is held back until the run is accepted (_start_run_files)
    setup_logging(cfg.OUTPUT, dist_info.rank, defer_file=True)
    _configure_determinism(cfg, dist_info.device)
    logger.info("world size %d, device %s, backend %s, output %s", dist_info.world_size,
                dist_info.device, dist_info.backend or "none", os.path.abspath(cfg.OUTPUT))
    seed_everything(cfg.SEED + dist_info.rank)
    resume_path, resume_ckpt = _resume_checkpoint(cfg)

    # Data first: bad data paths fail before the (possibly large) model is built, and a
    # generated set (synthetic) exists before the model's class names are read from it.
    train_loader = build_loader(cfg, "train")
    val_loader = build_loader(cfg, "val")
    model = build_model(cfg).to(dist_info.device)
    if cfg.TRAIN.USE_CHECKPOINT and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    trainable, total = count_parameters(model)
    logger.info("model %s: %d parameters, %d trainable", cfg.MODEL.TYPE, total, trainable)

    if len(train_loader) == 0:
        raise ConfigError(f"the training set gives no batch of DATA.BATCH_SIZE "
                          f"{cfg.DATA.BATCH_SIZE} per process; lower the batch size")
    mixup = build_mixup(cfg)
    if mixup is not None and cfg.DATA.BATCH_SIZE % 2:
        raise ConfigError(f"key DATA.BATCH_SIZE: mixup/cutmix needs an even batch per process, "
                          f"got {cfg.DATA.BATCH_SIZE}")
    criterion = build_criterion(cfg, mixup)
    optimizer = build_optimizer(cfg, model, dist_info.world_size)
    steps_per_epoch = math.ceil(len(train_loader) / max(1, cfg.TRAIN.ACCUMULATION_STEPS))
    num_epochs = training_epochs(cfg, steps_per_epoch)
    max_updates = total_updates(cfg, steps_per_epoch) if cfg.TRAIN.TOTAL_STEPS > 0 else None
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch, dist_info.world_size)
    scaler = build_grad_scaler(cfg, dist_info.device)
    lrs = scaled_learning_rates(cfg, dist_info.world_size)
    logger.info("lr %.3e, warmup lr %.3e, min lr %.3e (scaled: %s; global batch %d x %d "
                "accumulation), %d updates per epoch, %d updates in %d epochs%s, AMP %s",
                lrs["base_lr"], lrs["warmup_lr"], lrs["min_lr"], cfg.TRAIN.SCALE_LR,
                cfg.DATA.BATCH_SIZE * dist_info.world_size, max(1, cfg.TRAIN.ACCUMULATION_STEPS),
                steps_per_epoch, total_updates(cfg, steps_per_epoch), num_epochs,
                " (TRAIN.TOTAL_STEPS)" if max_updates else "", cfg.TRAIN.AMP)
    slow_bf16 = slow_bf16_warning(cfg, dist_info.device)
    if slow_bf16:
        logger.warning(slow_bf16)

    state = TrainState(epoch=cfg.TRAIN.START_EPOCH)
    ddp_model = wrap_model(cfg, model, dist_info)
    # DDP first, then compile (engine/compile.py says why); evaluation compiles the bare model.
    # Both wrappers share `model`'s parameters, which resume and checkpoints read and write.
    train_net = compile_model(ddp_model, cfg.TRAIN.COMPILE)
    eval_net = compile_model(model, cfg.TEST.COMPILE)
    if cfg.TRAIN.COMPILE != "off" or cfg.TEST.COMPILE != "off":
        logger.info("torch.compile: training %s, evaluation %s (compiled on first use; compile "
                    "time is logged on its own line)", cfg.TRAIN.COMPILE, cfg.TEST.COMPILE)
    resumed_from = _resume(cfg, model, optimizer, scheduler, scaler, state, dist_info,
                           resume_path, resume_ckpt)
    del resume_ckpt
    summary = {"max_accuracy": state.max_accuracy, "last_metrics": None,
               "epochs": num_epochs, "iterations": state.iteration,
               "skipped_steps": state.skipped_steps, "output": os.path.abspath(cfg.OUTPUT)}
    if state.epoch >= num_epochs:
        key = "TRAIN.TOTAL_STEPS" if max_updates else "TRAIN.EPOCHS"
        logger.warning("nothing to train: %s already holds epoch %d of %d (%s); raise %s to "
                       "train on, or choose another OUTPUT. No file was changed.",
                       resumed_from or cfg.OUTPUT, state.epoch - 1, num_epochs, key, key)
        return summary
    _start_run_files(cfg, dist_info, state, resumed_from)

    class_names = config_class_names(cfg)  # stored in every checkpoint; read once per run
    tb = TensorBoardWriter(os.path.join(cfg.OUTPUT, "tb"), enabled=dist_info.is_main)
    log = _JsonLines(os.path.join(cfg.OUTPUT, "metrics.jsonl") if dist_info.is_main else None)
    config_yaml = cfg.dump()
    last_metrics = None
    try:
        for epoch in range(state.epoch, num_epochs):
            state.epoch, state.batch = epoch, 0
            _loader_set_epoch(train_loader, epoch)
            stats = train_one_epoch(cfg, train_net, train_loader, optimizer, scheduler, scaler,
                                    criterion, dist_info.device, state, mixup=mixup, tb=tb,
                                    log=log, max_updates=max_updates)
            stats["bad_videos"] = _bad_videos(train_loader)
            logger.info("epoch %d: loss %.4f, %.1f clips/s, %.0fs, lr %.3e, %d bad videos, "
                        "%d skipped updates", epoch, stats["loss"], stats["clips_per_s"],
                        stats["time_s"], stats["lr"], stats["bad_videos"], stats["skipped_steps"])
            tb.scalars({"loss": stats["loss"], "clips_per_s": stats["clips_per_s"],
                        "bad_videos": stats["bad_videos"], "memory_mb": stats["memory_mb"]},
                       epoch, prefix="epoch/")
            log.write({"type": "train_epoch", **stats})
            last_epoch = epoch + 1 == num_epochs
            is_best = False
            if (epoch + 1) % cfg.TRAIN.EVAL_FREQ == 0 or last_epoch:
                result = evaluate(eval_net, val_loader, dist_info.device, amp=amp_dtype(cfg),
                                  desc=f"Val epoch {epoch}", print_freq=cfg.PRINT_FREQ)
                if result["compile_s"] > 0:
                    log.write({"type": "compile", "phase": "eval", "epoch": epoch,
                               "mode": cfg.TEST.COMPILE, "seconds": result["compile_s"]})
                last_metrics = result["metrics"]
                is_best = last_metrics["top1"] > state.max_accuracy or state.max_accuracy == 0.0
                state.max_accuracy = max(state.max_accuracy, last_metrics["top1"])
                logger.info("epoch %d validation: top-1 %.2f  top-5 %.2f  mean class %.2f  "
                            "(%d videos, %d bad; best top-1 %.2f)", epoch, last_metrics["top1"],
                            last_metrics["top5"], last_metrics["mean_class_acc"],
                            last_metrics["num_samples"], last_metrics["bad_videos"],
                            state.max_accuracy)
                if last_metrics["bad_videos"]:
                    logger.warning("%d unreadable validation videos are left out of the "
                                   "validation metrics (TEST.BAD_VIDEO_POLICY exclude)",
                                   last_metrics["bad_videos"])
                tb.scalars({k: last_metrics[k] for k in ("top1", "top5", "mean_class_acc")},
                           epoch, prefix="val/")
                log.write({"type": "val", "epoch": epoch,
                           **{k: v for k, v in last_metrics.items() if k != "per_class_acc"}})
            rng_states = du.all_gather_objects(capture_rng_state())
            if dist_info.is_main:
                ckpt = build_checkpoint(model, optimizer, scheduler, scaler, epoch=epoch,
                                        iteration=state.iteration,
                                        max_accuracy=state.max_accuracy, config_yaml=config_yaml,
                                        rng_states=rng_states,
                                        extra={"skipped_steps": state.skipped_steps,
                                               "world_size": dist_info.world_size,
                                               # the names of the head's outputs, in order:
                                               # inference checks its class list against them
                                               "class_names": class_names})
                written = save_checkpoint(ckpt, cfg.OUTPUT, epoch, cfg.SAVE_FREQ, is_best,
                                          last_epoch)
                logger.info("saved %s", ", ".join(os.path.basename(p) for p in written))
            state.saved_epoch = epoch
            du.barrier()
            tb.flush()
    except KeyboardInterrupt as err:
        saved = (f"the last checkpoint is epoch {state.saved_epoch}"
                 if state.saved_epoch is not None else "no checkpoint was written yet")
        raise TrainingInterrupted(f"interrupted at epoch {state.epoch} iteration {state.batch}; "
                                  f"{saved}; run the same command to resume") from err
    finally:
        tb.close()
        log.close()
    summary.update(max_accuracy=state.max_accuracy, last_metrics=last_metrics,
                   iterations=state.iteration, skipped_steps=state.skipped_steps)
    return summary


@torch.no_grad()
def throughput(cfg, warmup: int = 5, iterations: int = 20) -> float:
    """THROUGHPUT_MODE: forward-only clips/s of the model on one validation batch (per process)."""
    from datasets import build_loader

    dist_info = du.init_distributed(cfg)
    setup_logging(None, dist_info.rank)
    _configure_determinism(cfg, dist_info.device)
    model = compile_model(build_model(cfg).to(dist_info.device).eval(), cfg.TEST.COMPILE)
    views = next(iter(build_loader(cfg, "val")))[0]
    clips = (views.flatten(0, 1) if views.dim() == 6 else views).to(dist_info.device)
    dtype = amp_dtype(cfg)
    sync = torch.cuda.synchronize if dist_info.device.type == "cuda" else (lambda: None)
    clock = compile_clock()
    compile_before = clock.seconds
    with torch.autocast(dist_info.device.type, dtype=dtype or torch.float32,
                        enabled=dtype is not None):
        for _ in range(warmup):  # a compiled model compiles here, before the timing
            model(clips)
        sync()
    if clock.seconds > compile_before:
        logger.info("compiled the model in %.1f s (TEST.COMPILE %s)",
                    clock.seconds - compile_before, cfg.TEST.COMPILE)
    with torch.autocast(dist_info.device.type, dtype=dtype or torch.float32,
                        enabled=dtype is not None):
        start = time.time()
        for _ in range(iterations):
            model(clips)
        sync()
    rate = iterations * clips.shape[0] / (time.time() - start)
    logger.info("throughput: %.1f clips/s (batch %d, %d frames, %dpx, AMP %s)", rate,
                clips.shape[0], clips.shape[1], clips.shape[-1], cfg.TRAIN.AMP)
    return rate
