"""Builders that turn a config into objects: model, optimiser, schedule, loss, wrapping."""
from __future__ import annotations

import inspect
import logging
import math
import os

import torch
import torch.nn as nn

from common.errors import ConfigValueError
from common.modules import unwrap_model

from .config import ConfigError
from .contract import HasWeightKeys, NoWeightDecay, NoWeightDecayKeywords, TextEncoder
from .registry import model_family

__all__ = ["build_model", "config_class_names", "check_class_count", "checkpoint_class_names",
           "check_checkpoint_classes", "build_model_without_init",
           "unwrap_model", "count_parameters", "param_groups", "is_no_decay",
           "scaled_learning_rates", "build_optimizer", "reference_cosine_lr", "build_scheduler",
           "total_updates", "training_epochs",
           "build_criterion", "amp_dtype", "slow_bf16_warning", "build_grad_scaler", "wrap_model"]


def build_model(cfg, class_names=None) -> nn.Module:
    """The model selected by MODEL.TYPE; takes (B, T, C, H, W) video, returns (B, classes) logits.

    The registered family of MODEL.TYPE builds it (engine/registry.py); ``class_names`` are
    passed to it as they are (the engine reads them from the config's class list when None).
    Model-zoo names in the family's ``weight_keys`` become local files first (engine/zoo.py),
    except with ``EVAL_MODE``: then every weight comes from a checkpoint loaded afterwards, and
    initialisation files are neither resolved, downloaded nor read.
    """
    try:
        family = model_family(cfg.MODEL.TYPE)
    except KeyError as err:
        raise ConfigError(f"key MODEL.TYPE: {err.args[0]}") from None
    if class_names is None:
        class_names = config_class_names(cfg)
        check_class_count(cfg, class_names)
    if not cfg.EVAL_MODE and isinstance(family, HasWeightKeys):
        # weights given by zoo name -> cached file; evaluation reads no init weights: never
        # resolve (fetch) them
        from .zoo import resolve_config_weights
        cfg = resolve_config_weights(cfg, family.weight_keys)
    try:
        return family.build(cfg, class_names)
    except ConfigValueError as err:  # the family names the key and what to do
        raise ConfigError(str(err), key=err.key) from None


def check_class_count(cfg, class_names) -> None:
    """MODEL.NUM_CLASSES (when set, > 0) must equal the number of names in the config's class
    list, for every model: a head of another size would score classes that do not exist, or
    leave some out."""
    classes = cfg.MODEL.NUM_CLASSES
    if class_names is None or classes <= 0 or len(class_names) == classes:
        return
    raise ConfigError(f"key MODEL.NUM_CLASSES: {classes}, but {_class_list_source(cfg)} has {len(class_names)} "
                      f"names; set MODEL.NUM_CLASSES {len(class_names)} (or fix the class list)")


def _class_list_source(cfg) -> str:
    """Where a config's class list comes from, as error messages name it."""
    return (f"DATA.LABEL_LIST {cfg.DATA.LABEL_LIST}" if cfg.DATA.LABEL_LIST else
            f"the bundled class list of DATA.DATASET {cfg.DATA.DATASET}")


def config_class_names(cfg) -> list[str] | None:
    """The class names a config means (DATA.LABEL_LIST, else the dataset's bundled list), or
    None; a bad list is a ConfigError naming DATA.LABEL_LIST."""
    import datasets
    try:
        return datasets.class_names(cfg)
    except (OSError, ValueError) as err:
        raise ConfigError(f"key DATA.LABEL_LIST: {err}") from None
    except KeyError:  # a layout registered after the config was validated
        return None


def checkpoint_class_names(ckpt: dict) -> list[str] | None:
    """The class names a checkpoint's head was trained on, in order: its ``class_names`` (our
    checkpoints since they record them), else the class file its stored config names, when
    that file can still be read; None when unknown."""
    names = ckpt.get("class_names")
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    import yaml

    import datasets
    from .checkpoint import checkpoint_to_cfg_yaml
    try:
        stored = yaml.safe_load(checkpoint_to_cfg_yaml(ckpt) or "") or {}
        label_list = (stored.get("DATA") or {}).get("LABEL_LIST")
    except (yaml.YAMLError, AttributeError):
        return None
    if not isinstance(label_list, str) or not label_list or not os.path.isfile(label_list):
        return None
    try:
        return list(datasets.read_class_names(label_list))
    except (OSError, ValueError):
        return None


def check_checkpoint_classes(cfg, ckpt: dict, model: nn.Module, source: str) -> None:
    """Refuse a config whose class list differs (names or order) from the one the checkpoint's
    classifier head was trained on: every prediction would carry another class's name. A model
    that scores against text (``encode_text``) takes any class list; TEST.OVERRIDE_CHECKPOINT_
    CLASSES True accepts the difference on purpose."""
    if isinstance(unwrap_model(model), TextEncoder):
        return
    stored = checkpoint_class_names(ckpt)
    wanted = config_class_names(cfg)
    if stored is None or wanted is None or list(stored) == list(wanted):
        return
    if cfg.TEST.OVERRIDE_CHECKPOINT_CLASSES:
        logging.getLogger(__name__).warning(
            "the class list of the config differs from the one %s was trained on; used as "
            "given (TEST.OVERRIDE_CHECKPOINT_CLASSES True)", source)
        return
    source_list = _class_list_source(cfg)
    if sorted(stored) == sorted(wanted):
        first = next(i for i, (a, b) in enumerate(zip(stored, wanted)) if a != b)
        what = (f"the same names in another order (class {first} is {wanted[first]!r} there, "
                f"{stored[first]!r} in the checkpoint)")
    else:
        other = sorted(set(wanted) - set(stored)) or sorted(set(stored) - set(wanted))
        what = f"other names (e.g. {other[0]!r} is in only one of them)"
    raise ConfigError(f"{source_list} has {what} than the {len(stored)} classes {source} was "
                      f"trained on, which would relabel its predictions; use the training "
                      f"class list, or --opts TEST.OVERRIDE_CHECKPOINT_CLASSES True to use "
                      f"this one anyway")


def build_model_without_init(cfg, class_names=None) -> nn.Module:
    """The model of ``cfg`` without reading any initialisation file (pretrained 2-D weights, a
    CLIP backbone): for evaluating a checkpoint that holds every weight, or for FLOP counts.

    The convention every model family honours (engine/registry.py): with ``EVAL_MODE`` set, the
    weights come from a checkpoint loaded afterwards, so ``build`` reads no weight file.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.EVAL_MODE = True
    cfg.freeze()
    return build_model(cfg, class_names)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a parameter shared by several modules counts once."""
    params = list(unwrap_model(model).parameters())  # .parameters() yields each tensor once
    return (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


# ---------------------------------------------------------------------------------------------
# Optimiser
# ---------------------------------------------------------------------------------------------
def _model_skip_sets(model: nn.Module) -> tuple[set, set]:
    """The model's own no-decay names and name fragments (engine.contract.NoWeightDecay, and
    timm's no_weight_decay_keywords): the engine names no parameter of any model."""
    skip = set(model.no_weight_decay()) if isinstance(model, NoWeightDecay) else set()
    keywords = (set(model.no_weight_decay_keywords())
                if isinstance(model, NoWeightDecayKeywords) else set())
    # The reference's keyword '' matched every name (its quirk 7.1a); never let it leak in.
    return {s for s in skip if s}, {k for k in keywords if k}


def is_no_decay(name: str, param: torch.Tensor, skip: set, keywords: set) -> bool:
    """Norms, biases and other 1-D params, and what the model names (``skip``: full names or
    module prefixes, ``keywords``: name fragments)."""
    if param.ndim <= 1 or name.endswith(".bias"):
        return True
    if name in skip or any(name.startswith(s + ".") for s in skip):
        return True
    return any(k in name for k in keywords)


def param_groups(cfg, model: nn.Module) -> list[dict]:
    """[{params, weight_decay, names}] over parameters with requires_grad only."""
    model = unwrap_model(model)
    skip, keywords = _model_skip_sets(model)
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen backbones (Vita-CLIP) get no optimiser state at all
        if cfg.TRAIN.OPTIMIZER.SKIP_DECAY and is_no_decay(name, param, skip, keywords):
            no_decay.append(param)
            no_decay_names.append(name)
        else:
            decay.append(param)
            decay_names.append(name)
    if not decay and not no_decay:
        raise ConfigError("the model has no trainable parameters (every requires_grad is False)")
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": cfg.TRAIN.WEIGHT_DECAY,
                       "names": decay_names})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "names": no_decay_names})
    return groups


def scaled_learning_rates(cfg, world_size: int) -> dict:
    """BASE_LR, WARMUP_LR, MIN_LR after the linear scaling rule (spec 4.5) when TRAIN.SCALE_LR."""
    lrs = {"base_lr": cfg.TRAIN.BASE_LR, "warmup_lr": cfg.TRAIN.WARMUP_LR,
           "min_lr": cfg.TRAIN.MIN_LR}
    if not cfg.TRAIN.SCALE_LR:
        return lrs
    factor = cfg.DATA.BATCH_SIZE * world_size / cfg.TRAIN.LR_SCALE_BATCH
    if cfg.TRAIN.ACCUMULATION_STEPS > 1:
        factor *= cfg.TRAIN.ACCUMULATION_STEPS
    return {k: v * factor for k, v in lrs.items()}


def build_optimizer(cfg, model: nn.Module, world_size: int = 1) -> torch.optim.Optimizer:
    """AdamW or nesterov SGD over decay / no-decay groups at the scaled BASE_LR."""
    lr = scaled_learning_rates(cfg, world_size)["base_lr"]
    groups = param_groups(cfg, model)
    opt = cfg.TRAIN.OPTIMIZER
    name = opt.NAME.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=opt.MOMENTUM, nesterov=True,
                               weight_decay=cfg.TRAIN.WEIGHT_DECAY)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, eps=opt.EPS, betas=tuple(opt.BETAS),
                                 weight_decay=cfg.TRAIN.WEIGHT_DECAY)
    raise ConfigError(f"key TRAIN.OPTIMIZER.NAME: unknown optimiser {opt.NAME!r}; use adamw or sgd")


# ---------------------------------------------------------------------------------------------
# Schedule (stepped once per optimiser update, t = global update index from 0)
# ---------------------------------------------------------------------------------------------
def reference_cosine_lr(t: int, total: int, warmup: int, base: float, warmup_lr: float,
                        min_lr: float) -> float:
    """Spec 4.5: linear warmup WARMUP_LR -> BASE_LR, then cosine on the absolute step."""
    if t < warmup:
        return warmup_lr + t * (base - warmup_lr) / warmup
    if t >= total:
        return min_lr
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t / total))


def total_updates(cfg, steps_per_epoch: int) -> int:
    """Optimiser updates of the whole run: TRAIN.TOTAL_STEPS when set (a step-based recipe such
    as Vita-CLIP's 30,000), else TRAIN.EPOCHS * steps_per_epoch."""
    if cfg.TRAIN.TOTAL_STEPS > 0:
        return int(cfg.TRAIN.TOTAL_STEPS)
    return max(1, int(cfg.TRAIN.EPOCHS * steps_per_epoch))


def training_epochs(cfg, steps_per_epoch: int) -> int:
    """Passes over the training set: TRAIN.EPOCHS, or as many as TRAIN.TOTAL_STEPS updates need
    (the last one stops at the last update)."""
    if cfg.TRAIN.TOTAL_STEPS > 0:
        return math.ceil(cfg.TRAIN.TOTAL_STEPS / max(1, steps_per_epoch))
    return int(cfg.TRAIN.EPOCHS)


def build_scheduler(cfg, optimizer, steps_per_epoch: int, world_size: int = 1):
    """timm scheduler (t_in_epochs=False) over ``total_updates`` optimiser updates."""
    from timm.scheduler import CosineLRScheduler, PolyLRScheduler, StepLRScheduler
    lrs = scaled_learning_rates(cfg, world_size)
    total = total_updates(cfg, steps_per_epoch)
    warmup = int(cfg.TRAIN.WARMUP_EPOCHS * steps_per_epoch)
    name = cfg.TRAIN.LR_SCHEDULER.NAME
    if name == "cosine":
        # timm 1.0 CosineLRScheduler with warmup_prefix False matches reference_cosine_lr
        # (warmup targets BASE_LR, cosine on the absolute step); tests pin it.
        return CosineLRScheduler(optimizer, t_initial=total, lr_min=lrs["min_lr"],
                                 warmup_lr_init=lrs["warmup_lr"], warmup_t=warmup,
                                 cycle_limit=1, t_in_epochs=False, warmup_prefix=False)
    if name == "linear":
        return PolyLRScheduler(optimizer, t_initial=total, power=1.0, lr_min=lrs["min_lr"],
                               warmup_lr_init=lrs["warmup_lr"], warmup_t=warmup,
                               t_in_epochs=False)
    if name == "step":
        return StepLRScheduler(optimizer,
                               decay_t=int(cfg.TRAIN.LR_SCHEDULER.DECAY_EPOCHS * steps_per_epoch),
                               decay_rate=cfg.TRAIN.LR_SCHEDULER.DECAY_RATE,
                               warmup_lr_init=lrs["warmup_lr"], warmup_t=warmup,
                               t_in_epochs=False)
    raise ConfigError(f"key TRAIN.LR_SCHEDULER.NAME: unknown scheduler {name!r}")


# ---------------------------------------------------------------------------------------------
# Loss, precision, wrapping
# ---------------------------------------------------------------------------------------------
def build_criterion(cfg, mixup=None) -> nn.Module:
    """Soft-target CE under mixup/cutmix; else CE with MODEL.LABEL_SMOOTHING (0 = plain CE)."""
    if mixup is not None:
        from timm.loss import SoftTargetCrossEntropy
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=cfg.MODEL.LABEL_SMOOTHING)


def amp_dtype(cfg) -> torch.dtype | None:
    """TRAIN.AMP: off -> None (fp32), fp16 -> float16 (with a GradScaler), bf16 -> bfloat16."""
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[str(cfg.TRAIN.AMP)]


def slow_bf16_warning(cfg, device: torch.device) -> str | None:
    """A warning when TRAIN.AMP bf16 runs on a CPU without native bf16 instructions.

    There (AVX2-only CPUs: no AVX512-BF16, no AMX) oneDNN has no bf16 kernels: matrix products
    fall back to generic loops and convolutions to im2col, several times slower than float32
    (docs/benchmarks.md measures it).
    """
    if amp_dtype(cfg) != torch.bfloat16 or device.type != "cpu":
        return None
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return ("TRAIN.AMP bf16 on a CPU without native bfloat16 instructions (no AVX512-BF16/AMX): "
            "bf16 matrix products and convolutions run several times slower than float32 here "
            "(Video-FocalNet-T inference: about 7x); TRAIN.AMP off is faster on this machine")


def build_grad_scaler(cfg, device: torch.device) -> torch.amp.GradScaler:
    """Enabled only for fp16; a disabled scaler is a pass-through."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(cfg) == torch.float16)


def wrap_model(cfg, model: nn.Module, dist_info) -> nn.Module:
    """DistributedDataParallel when there are several processes; the bare model otherwise."""
    if dist_info.world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    device_ids = [dist_info.device.index] if dist_info.device.type == "cuda" else None
    # Buffers are constants here (no BatchNorm): never re-broadcast them on each forward.
    # Newer torch spells this forward_sync_buffers (broadcast_buffers is deprecated there).
    params = inspect.signature(DDP.__init__).parameters
    sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
            else {"broadcast_buffers": False})
    return DDP(model, device_ids=device_ids,
               find_unused_parameters=cfg.DIST.FIND_UNUSED_PARAMETERS, **sync)
