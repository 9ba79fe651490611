"""One config tree for every model, dataset and run (YACS).

Key names follow the official Video-FocalNets ``config.py`` verbatim, so every released config
file loads unchanged. Keys the reference accepted but ignored are either wired (and their default
set so that the reference behaviour is reproduced) or documented as informational. Model
families add their own sections through the registry (``add_config``; e.g. ``MODEL.VITA``).

``get_cfg()`` returns a fresh mutable tree; ``load_cfg(path, opts)`` merges a YAML file (with
``_BASE_``/``BASE`` inheritance) and ``KEY VALUE`` overrides, validates and freezes.
"""
from __future__ import annotations

import ast
import difflib
import functools
import json
import logging
import os
import urllib.parse
from importlib import metadata
from typing import Iterable, Sequence

import yaml
from yacs.config import CfgNode as CN

from common.errors import ConfigValueError

logger = logging.getLogger(__name__)

_DISTRIBUTION = "video-recognition"  # setup.py name; datasets.DISTRIBUTION marks our package

__all__ = ["CN", "ConfigError", "get_cfg", "load_cfg", "merge_opts", "validate_cfg",
           "find_config_file", "fill_data_normalization", "fill_input_pipeline"]


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message says where and what to do.
    ``key``: the dotted key at fault, when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def __reduce__(self):
        return type(self), (str(self), self.key)


# torch.compile modes of TRAIN.COMPILE / TEST.COMPILE (engine/compile.py)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
# String keys whose YAML spelling `off` (or `on`) arrives as a bool.
_BOOL_WORDS = {"TRAIN.AMP": {False: "off"},
               "TRAIN.COMPILE": {False: "off", True: "default"},
               "TEST.COMPILE": {False: "off", True: "default"}}

_C = CN()
_C.BASE = [""]  # official spelling of base-config inheritance; `_BASE_: path` works too

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
_C.DATA = CN()
_C.DATA.ROOT = ""  # directory joined to every relative path in the annotation files
_C.DATA.TRAIN_FILE = ""  # training annotation file; empty: found from DATA.ROOT for known layouts
_C.DATA.VAL_FILE = ""  # validation annotation file; empty: found from DATA.ROOT for known layouts
_C.DATA.TEST_FILE = ""  # test annotation file; empty: DATA.VAL_FILE is used for split "test"
_C.DATA.NUM_FRAMES = 32  # frames per clip fed to the model (official default; released configs use 8)
_C.DATA.NUM_CLASSES = 101  # number of classes of the dataset (mixup targets, evaluation)
_C.DATA.LABEL_LIST = ""  # class names: one per line, or the official CSV form `id,name`
_C.DATA.BATCH_SIZE = 128  # clips per process (per GPU) for training
_C.DATA.DATA_PATH = ""  # informational (official key, unused)
_C.DATA.DATASET = "csv"  # a registered layout (datasets.layout_names()): the annotation reader
_C.DATA.IMG_SIZE = 224  # spatial size the model is built for
_C.DATA.INPUT_SIZE = 224  # spatial crop size produced by the data pipeline
_C.DATA.INTERPOLATION = "bicubic"  # informational (official key; the video pipeline is bilinear)
_C.DATA.ZIP_MODE = False  # informational (official key, unused)
_C.DATA.CACHE_MODE = "part"  # informational (official key, unused)
_C.DATA.PIN_MEMORY = True  # pin host memory in the loader (used when a GPU is present)
_C.DATA.NUM_WORKERS = 8  # loader worker processes per training process
# The input pipeline: the keys marked [family] take the model family's official value
# (video_focalnet/config.py, vita_clip/config.py; docs/datasets.md lists each with its source)
# unless the config file or --opts sets them. The values here are Video-FocalNet's.
_C.DATA.DECODER = "decord"  # [family] decord | pyav | frames (folders of pre-extracted JPEG frames)
_C.DATA.SAMPLING = "segment"  # [family] segment: one frame per segment (TSN); dense: strided clip
_C.DATA.FRAME_INTERVAL = 16  # [family] stride between frames for SAMPLING dense
_C.DATA.RESIZE_ROUNDING = "half_up"  # [family] long side of a short-side resize: half_up | floor
_C.DATA.SPLIT = 1  # official split (1-3) for HMDB51 / UCF101 layouts
_C.DATA.FIND_BY_NAME = False  # list-file entries are file names found anywhere under DATA.ROOT
_C.DATA.MEAN = []  # pixel mean on 0..1 RGB; empty: load_cfg fills the model family's own
_C.DATA.STD = []  # pixel std on 0..1 RGB; empty: load_cfg fills the model family's own
_C.DATA.MAX_BAD_FRACTION = 0.5  # stop if more than this fraction of an epoch's videos fail to decode
# The synthetic motion benchmark (DATA.DATASET synthetic), generated into DATA.ROOT on first use.
_C.DATA.SYNTHETIC = CN()
_C.DATA.SYNTHETIC.NUM_TRAIN = 1800  # training clips
_C.DATA.SYNTHETIC.NUM_VAL = 300  # validation clips
_C.DATA.SYNTHETIC.NUM_FRAMES = 16  # frames per generated video
_C.DATA.SYNTHETIC.SIZE = 64  # height = width of the generated videos
_C.DATA.SYNTHETIC.SEED = 0  # generation seed (the set is a pure function of its settings)

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.TYPE = "videofocalnet_tiny"  # a registered model type (engine.registry.model_types())
_C.MODEL.NAME = ""  # free-form run name (official key)
_C.MODEL.RESUME = ""  # checkpoint to resume from (model, optimizer, scheduler, epoch)
_C.MODEL.NUM_CLASSES = 1000  # size of the classification head
_C.MODEL.DROP_RATE = 0.0  # dropout in MLPs and after the stem (the reference never passed it: 0)
_C.MODEL.DROP_PATH_RATE = 0.1  # stochastic depth, linear from 0 to this over all blocks
_C.MODEL.LABEL_SMOOTHING = 0.1  # label smoothing when mixup/cutmix is off
_C.MODEL.PRETRAINED = False  # informational (official timm flag; weights come from *_PATH keys)
_C.MODEL.SPEC = CN(new_allowed=True)  # free-form model extras (official key)
_C.MODEL.TUBELET_SIZE = 1  # frames per tubelet in the stem (Conv3d); 1 = per-frame Conv2d

# MODEL.FOCAL (Video-FocalNet) is added by its model family: video_focalnet/config.py

# MODEL.VITA (Vita-CLIP) is added by its model family: vita_clip/config.py

# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
_C.TRAIN = CN()
_C.TRAIN.START_EPOCH = 0  # first epoch (set by resume)
_C.TRAIN.EPOCHS = 300  # training epochs (unused when TRAIN.TOTAL_STEPS > 0)
_C.TRAIN.TOTAL_STEPS = 0  # > 0: train exactly this many optimiser updates whatever the dataset size (LR schedule over them; epochs follow); 0: TRAIN.EPOCHS
_C.TRAIN.WARMUP_EPOCHS = 20  # linear warmup epochs (stepped per iteration)
_C.TRAIN.WEIGHT_DECAY = 0.05  # applied as configured (the reference effectively used 0, see README)
_C.TRAIN.BASE_LR = 5e-4  # learning rate for a global batch of TRAIN.LR_SCALE_BATCH
_C.TRAIN.WARMUP_LR = 5e-7  # learning rate at the start of warmup (scaled like BASE_LR)
_C.TRAIN.MIN_LR = 5e-6  # floor of the cosine schedule (scaled like BASE_LR)
_C.TRAIN.CLIP_GRAD = 5.0  # max gradient norm (0 or negative: no clipping)
_C.TRAIN.AUTO_RESUME = True  # resume from OUTPUT/latest.pth when it exists
_C.TRAIN.ACCUMULATION_STEPS = 0  # micro-batches per optimizer step (0 or 1: none)
_C.TRAIN.USE_CHECKPOINT = False  # activation checkpointing in the blocks (saves memory)
_C.TRAIN.PRETRAINED_PATH = ""  # 2D ImageNet FocalNet weights to initialise Video-FocalNet
_C.TRAIN.AMP = "off"  # off | fp16 (GradScaler) | bf16 mixed precision via torch.amp
_C.TRAIN.COMPILE = "off"  # torch.compile of the training step: off, default, reduce-overhead, max-autotune
_C.TRAIN.SCALE_LR = True  # linear scaling: lr * batch * world * accumulation / LR_SCALE_BATCH
_C.TRAIN.LR_SCALE_BATCH = 512  # reference batch of the linear scaling rule
_C.TRAIN.NAN_POLICY = "stop"  # stop | skip: what a non-finite loss does
_C.TRAIN.EVAL_FREQ = 1  # validate every this many epochs (and after the last)
_C.TRAIN.DETERMINISTIC = False  # deterministic kernels (torch.use_deterministic_algorithms, no cudnn.benchmark); slower
_C.TRAIN.LR_SCHEDULER = CN()
_C.TRAIN.LR_SCHEDULER.NAME = "cosine"  # cosine | linear | step
_C.TRAIN.LR_SCHEDULER.DECAY_EPOCHS = 30  # step scheduler: epochs between decays
_C.TRAIN.LR_SCHEDULER.DECAY_RATE = 0.1  # step scheduler: decay factor
_C.TRAIN.OPTIMIZER = CN()
_C.TRAIN.OPTIMIZER.NAME = "adamw"  # adamw | sgd (SGD is nesterov, as in the reference)
_C.TRAIN.OPTIMIZER.EPS = 1e-8  # AdamW epsilon
_C.TRAIN.OPTIMIZER.BETAS = (0.9, 0.999)  # AdamW betas
_C.TRAIN.OPTIMIZER.MOMENTUM = 0.9  # SGD momentum
_C.TRAIN.OPTIMIZER.SKIP_DECAY = True  # no decay on norms/biases/1-D/prompts/embeddings; False: decay every trainable param (Vita-CLIP reference: one group)

# ---------------------------------------------------------------------------------------------
# Augmentation (same parameters for every frame of a clip)
# ---------------------------------------------------------------------------------------------
_C.AUG = CN()
_C.AUG.COLOR_JITTER = 0.4  # probability of colour jitter (brightness .4, contrast .4, sat .2, hue .1)
_C.AUG.AUTO_AUGMENT = ""  # timm RandAugment string, e.g. rand-m7-n4-mstd0.5-inc1 ("" = off, as ref)
_C.AUG.REPROB = 0.0  # random erasing probability (the reference never erased: 0)
_C.AUG.REMODE = "pixel"  # random erasing mode
_C.AUG.RECOUNT = 1  # random erasing count
_C.AUG.MIXUP = 0.8  # mixup alpha (mixup/cutmix on when MIXUP or CUTMIX > 0)
_C.AUG.CUTMIX = 1.0  # cutmix alpha
_C.AUG.CUTMIX_MINMAX = None  # cutmix box ratio bounds (overrides alpha when set)
_C.AUG.MIXUP_PROB = 1.0  # probability of mixing a batch (the reference mixed every batch)
_C.AUG.MIXUP_SWITCH_PROB = 0.5  # probability of cutmix instead of mixup
_C.AUG.MIXUP_MODE = "batch"  # batch | pair | elem
_C.AUG.GRAY_SCALE = 0.2  # probability of grayscale
_C.AUG.FLIP_RATIO = 0.5  # probability of a horizontal flip
_C.AUG.FLIP_LABEL_MAP = ""  # "": no swap; "auto": SSv2 left/right names; or a file `a,b` per line
_C.AUG.FRAME_INTERVAL = 2  # segment sampling: span of one sampled "clip" (reference ori_len)
_C.AUG.LABEL_SMOOTH = 0.1  # label smoothing inside the mixup targets
_C.AUG.SCALE = (0.08, 1.0)  # random resized crop area range
_C.AUG.RATIO = (0.75, 1.3333333333333333)  # random resized crop aspect range
_C.AUG.TRAIN_RESIZE_SCALE = 256 / 224  # [family] short side int(this * INPUT_SIZE) before the random crop; 0: crop the decoded frame
_C.AUG.RANDAUG_POSITION = "after_crop"  # [family] RandAugment after_crop (on the crop) | before_crop (whole frame)
_C.AUG.RANDAUG_INTERPOLATION = "random"  # [family] RandAugment resampling: random | bicubic | bilinear

# ---------------------------------------------------------------------------------------------
# Testing
# ---------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.CROP = True  # informational (official key)
_C.TEST.NUM_CLIP = 1  # temporal views per video
_C.TEST.NUM_CROP = 1  # spatial views per clip: 1 (centre) or 3 (along the long side)
_C.TEST.RESIZE_SCALE = 256 / 224  # [family] one crop: short side int(this * INPUT_SIZE), then the centre crop (three crops: INPUT_SIZE)
_C.TEST.THREE_CROP = "mmaction"  # [family] three-crop layout: mmaction | edge | slowfast (datasets/transforms.py)
_C.TEST.ONLY_TEST = False  # informational (official key)
_C.TEST.BATCH_SIZE = 2  # videos per process in evaluation
_C.TEST.BAD_VIDEO_POLICY = "exclude"  # exclude: unreadable videos left out of metrics, listed; fail: stop
_C.TEST.COMPILE = "off"  # torch.compile of evaluation: off, default, reduce-overhead, max-autotune
# The class list of DATA.LABEL_LIST / the dataset may differ (names or order) from the one a
# checkpoint was trained with only when this is True: otherwise such a run is refused, as it
# would relabel every prediction of a fixed classifier head
_C.TEST.OVERRIDE_CHECKPOINT_CLASSES = False

# ---------------------------------------------------------------------------------------------
# Distributed (what torchrun does not already carry)
# ---------------------------------------------------------------------------------------------
_C.DIST = CN()
_C.DIST.BACKEND = "auto"  # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
_C.DIST.TIMEOUT_MINUTES = 30  # collective timeout
_C.DIST.FIND_UNUSED_PARAMETERS = False  # DDP find_unused_parameters
_C.DIST.DEVICE = "auto"  # auto | cuda | cpu

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
_C.AMP_OPT_LEVEL = ""  # apex level of the reference; mapped to TRAIN.AMP (O0 off, O1/O2 fp16)
_C.OUTPUT = "output/default"  # run directory: checkpoints, logs, results
_C.TAG = "default"  # run tag (official key)
_C.SAVE_FREQ = 1  # keep a checkpoint every this many epochs (latest/best always kept)
_C.PRINT_FREQ = 100  # log every this many iterations
_C.SEED = 0  # global seed (each process adds its rank)
_C.EVAL_MODE = False  # evaluate only
_C.THROUGHPUT_MODE = False  # measure throughput only
_C.DEBUG_MODE = False  # informational (official key)
_C.LOCAL_RANK = 0  # informational: torchrun sets LOCAL_RANK in the environment


def get_cfg() -> CN:
    """A fresh, mutable copy of the default config, with every registered model family's keys."""
    from .registry import model_families
    cfg = _C.clone()
    for family in model_families():
        family.add_config(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# Loading and merging
# ---------------------------------------------------------------------------------------------
# Integer keys that also take a fraction (a fractional number of epochs is a number of updates).
_FRACTIONAL_KEYS = {"TRAIN.WARMUP_EPOCHS", "TRAIN.LR_SCHEDULER.DECAY_EPOCHS"}


def _where(source: str, key: str) -> str:
    return f"{source}: key {key}" if source else f"key {key}"


def _closest(key: str, node: CN, prefix: str) -> str:
    candidates = [prefix + k for k in node.keys()]
    full = prefix + key
    match = difflib.get_close_matches(full, candidates, n=1, cutoff=0.5)
    if not match:  # also compare against every key of the tree for a misplaced key
        match = difflib.get_close_matches(key, list(node.keys()), n=1, cutoff=0.5)
        match = [prefix + m for m in match]
    return f" Did you mean {match[0]}?" if match else ""


def _coerce(value, default, key: str, source: str):
    """Check `value` against the default's type, converting what YAML or the command line give."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(default, float):
                return float(value)
            if float(value).is_integer():
                return int(value)
            if key in _FRACTIONAL_KEYS:
                return float(value)
            raise ConfigError(f"{_where(source, key)}: expected a whole number, got {value!r}; "
                              f"use e.g. {max(1, round(value))}")
        if isinstance(value, str):
            try:
                return float(value) if isinstance(default, float) else int(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, bool) and value in _BOOL_WORDS.get(key, {}):
            return _BOOL_WORDS[key][value]  # YAML 1.1 reads a bare `off` as False
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    raise ConfigError(f"{_where(source, key)}: expected {type(default).__name__} "
                      f"(default {default!r}), got {type(value).__name__} {value!r}")


def _merge_dict(cfg: CN, data: dict, source: str, prefix: str = "",
                origins: dict | None = None) -> None:
    """Merge ``data`` into ``cfg``; ``origins`` (when given) records ``full key -> source`` for
    every value set, so that validation names the file or override a bad value came from."""
    for key, value in data.items():
        full = prefix + key
        if origins is not None and not isinstance(value, dict):
            origins[full] = source
        if key not in cfg:
            if cfg.is_new_allowed():
                cfg[key] = CN(value, new_allowed=True) if isinstance(value, dict) else value
                continue
            raise ConfigError(f"{source or 'override'}: unknown config key {full}."
                              f"{_closest(key, cfg, prefix)} Remove it or fix its spelling.")
        default = cfg[key]
        if isinstance(default, CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(source, full)}: is a section; give a mapping of "
                                  f"its keys, not {value!r}")
            _merge_dict(default, value, source, full + ".", origins)
        else:
            cfg[key] = _coerce(value, default, full, source)


@functools.lru_cache(maxsize=1)
def _bundled_config_dirs() -> tuple:
    """Where the released configs (configs/**/*.yaml) are installed: ``engine/configs`` in a
    wheel; for an editable install, the ``configs`` folder of the source tree it points at
    (PEP 610 ``direct_url.json``)."""
    dirs = []
    installed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
    if os.path.isdir(installed):
        dirs.append(installed)
    for dist in metadata.distributions(name=_DISTRIBUTION):  # also a build's stray egg-info
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file://"):
            source = os.path.join(urllib.parse.unquote(url["url"][len("file://"):]), "configs")
            if os.path.isdir(source) and source not in dirs:
                dirs.append(source)
    return tuple(dirs)


def find_config_file(path: str) -> str:
    """``path`` itself when it exists (relative to the working directory); else the released
    config it names, ``configs/<rest>`` (or ``<rest>``) under the installed configs; else
    ``path`` unchanged."""
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    rest = path.replace("\\", "/")
    while rest.startswith("./"):
        rest = rest[2:]
    rest = rest[len("configs/"):] if rest.startswith("configs/") else rest
    for directory in _bundled_config_dirs():
        candidate = os.path.join(directory, *rest.split("/"))
        if os.path.isfile(candidate):
            return candidate
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last
    one silently, so a repeated section would drop the first one's keys)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: yaml reports it itself
                continue
            if first != key_node.start_mark.line + 1:
                raise ConfigError(f"{self.name} line {key_node.start_mark.line + 1}: key {key!r} "
                                  f"is given twice in one mapping (first on line {first}); merge "
                                  f"the two into one")
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> dict:
    if os.path.isdir(path):
        raise ConfigError(f"config file {path} is a directory; give the path of a YAML file")
    if not os.path.isfile(path):
        bundled = ", ".join(_bundled_config_dirs()) or "none installed"
        raise ConfigError(f"config file not found: {path}. Check the --cfg path (relative paths "
                          f"are taken from {os.getcwd()}, then from the released configs: "
                          f"{bundled}).")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (a binary file, or not UTF-8 text); "
                          f"give a .yaml file of config keys") from None
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from err
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; give at least MODEL.TYPE and the "
                          f"DATA keys (or `_BASE_: other.yaml`)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got "
                          f"{type(data).__name__}")
    return data


def _merge_file(cfg: CN, path: str, seen: tuple = (), origins: dict | None = None) -> None:
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: circular _BASE_ inheritance through {' -> '.join(seen)}")
    data = _read_yaml(path)
    bases = []
    for base_key in ("_BASE_", "BASE"):
        value = data.pop(base_key, None)
        if value:
            bases.extend([value] if isinstance(value, str) else list(value))
    for base in bases:
        if not base:
            continue
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: base config {base!r} not found (looked at {base_path})")
        _merge_file(cfg, base_path, seen + (path,), origins)
    _map_legacy_keys(data, path)
    _merge_dict(cfg, data, path, origins=origins)


def _map_legacy_keys(data: dict, source: str) -> None:
    """Keys that only made sense for the reference's tooling, mapped to ours with a notice."""
    level = data.get("AMP_OPT_LEVEL")
    if level:
        amp = "off" if str(level).upper() == "O0" else "fp16"
        data.setdefault("TRAIN", {}).setdefault("AMP", amp)
        logger.warning("%s: AMP_OPT_LEVEL %s (apex) is mapped to TRAIN.AMP %s (torch.amp)",
                       source or "override", level, amp)


def merge_opts(cfg: CN, opts: Sequence[str], source: str = "--opts",
               origins: dict | None = None) -> None:
    """Merge `KEY VALUE KEY VALUE ...` overrides (values parsed as Python/YAML literals)."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f"{source}: overrides come in KEY VALUE pairs; got an odd number "
                          f"({len(opts)}): {opts}")
    for key, raw in zip(opts[0::2], opts[1::2]):
        value = raw
        if isinstance(raw, str):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            if value is None and raw.strip().lower() not in ("null", "none", "~"):
                value = raw  # `--opts KEY ""` means an empty string, not YAML's null
            if isinstance(value, str):  # keep "1e-4" style numbers working
                try:
                    value = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    value = raw
        nested: dict = {}
        cursor = nested
        parts = key.split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        if key == "AMP_OPT_LEVEL":
            _map_legacy_keys(nested, source)
            nested.get("TRAIN", {}).pop("AMP", None)
            cfg.TRAIN.AMP = "off" if str(value).upper() == "O0" else "fp16"
        _merge_dict(cfg, nested, source, origins=origins)


def fill_data_normalization(cfg: CN) -> None:
    """Empty DATA.MEAN / DATA.STD <- the model family's own statistics (CLIP's for Vita-CLIP,
    ImageNet's for Video-FocalNet), so the data layer only ever reads DATA.MEAN / DATA.STD."""
    from .registry import model_family
    if len(cfg.DATA.MEAN) and len(cfg.DATA.STD):
        return
    mean, std = model_family(cfg.MODEL.TYPE).normalization(cfg)
    if not len(cfg.DATA.MEAN):
        cfg.DATA.MEAN = [float(v) for v in mean]
    if not len(cfg.DATA.STD):
        cfg.DATA.STD = [float(v) for v in std]


def fill_input_pipeline(cfg: CN, origins: dict) -> None:
    """The model family's official input pipeline (decoder, sampling, resize, crops, augmentation
    order: its ``input_pipeline(cfg)``) for every such key the config file or overrides did not
    set (``origins``): no model runs on another model's rules. An unknown MODEL.TYPE is left to
    validation."""
    from .registry import model_family
    try:
        family = model_family(cfg.MODEL.TYPE)
    except KeyError:
        return
    for key, value in family.input_pipeline(cfg).items():
        if key in origins:
            continue
        node = cfg
        *sections, name = key.split(".")
        for section in sections:
            node = node[section]
        if name not in node:
            raise KeyError(f"model family {family.name}: input_pipeline names {key}, which is not "
                           f"a config key")
        node[name] = value


def _data_package():
    """The project's ``datasets`` package, or a clear error when the importable ``datasets`` is
    another distribution's (Hugging Face's shares the name)."""
    import datasets
    if getattr(datasets, "DISTRIBUTION", None) != _DISTRIBUTION:
        try:
            other = f"{metadata.version('datasets')} "
        except metadata.PackageNotFoundError:
            other = ""
        raise ConfigError(
            f"`import datasets` found {getattr(datasets, '__file__', datasets)!r}, which is not "
            f"the data package of {_DISTRIBUTION} (Hugging Face's `datasets` {other}has the same "
            f"top-level name). Install {_DISTRIBUTION} in a virtual environment without "
            f"Hugging Face datasets (`pip uninstall datasets` there, then reinstall this project).")
    return datasets


def load_cfg(path: str | None = None, opts: Iterable[str] = (), freeze: bool = True,
             layers: Sequence[tuple[str, Sequence]] = ()) -> CN:
    """Defaults <- YAML file (with bases) <- KEY VALUE overrides <- each ``(source, opts)`` of
    ``layers`` (e.g. an ablation variant's own keys, named in messages); validated; frozen.

    Every error names the file or override the offending value came from."""
    cfg = get_cfg()
    origins: dict = {}
    if path:
        path = find_config_file(path)
        _merge_file(cfg, path, origins=origins)
    merge_opts(cfg, list(opts or []), origins=origins)
    for source, layer_opts in layers:
        merge_opts(cfg, list(layer_opts or []), source=source, origins=origins)
    _follow_sizes(cfg, origins)
    fill_input_pipeline(cfg, origins)
    validate_cfg(cfg, source=path or "", origins=origins)
    fill_data_normalization(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def _follow_sizes(cfg: CN, origins: dict) -> None:
    """DATA.IMG_SIZE (what the model is built for) and DATA.INPUT_SIZE (what the data pipeline
    crops): when a config sets one of them and not the other, the other follows it; when it sets
    both to different values, that is said once (it is allowed: a convolutional model runs at
    either size, only slower or on other crops than it was built for)."""
    img, crop = "DATA.IMG_SIZE" in origins, "DATA.INPUT_SIZE" in origins
    if img and not crop:
        cfg.DATA.INPUT_SIZE = cfg.DATA.IMG_SIZE
    elif crop and not img:
        cfg.DATA.IMG_SIZE = cfg.DATA.INPUT_SIZE
    elif img and crop and cfg.DATA.IMG_SIZE != cfg.DATA.INPUT_SIZE:
        logger.warning("DATA.IMG_SIZE %s (%s) and DATA.INPUT_SIZE %s (%s) differ: the model is "
                       "built for %s-pixel frames and fed %s-pixel crops", cfg.DATA.IMG_SIZE,
                       origins["DATA.IMG_SIZE"] or "defaults", cfg.DATA.INPUT_SIZE,
                       origins["DATA.INPUT_SIZE"] or "defaults", cfg.DATA.IMG_SIZE,
                       cfg.DATA.INPUT_SIZE)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
class _Source(str):
    """The source of a config (a file path, or "" for defaults) that knows, per key, which
    file or override set it: ``_where(source, key)`` names that one."""

    def __new__(cls, source: str, origins: dict | None = None):
        self = super().__new__(cls, source)
        self.origins = origins or {}
        return self

    def of(self, key: str) -> str:
        return self.origins.get(key, str(self))


def _origin(source, key: str) -> str:
    return source.of(key) if isinstance(source, _Source) else source


def _require(cond: bool, source: str, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{_where(_origin(source, key), key)}: {message}")


def _choice(cfg_value, choices, source, key):
    if cfg_value not in choices:
        close = difflib.get_close_matches(str(cfg_value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{_where(_origin(source, key), key)}: unknown value {cfg_value!r}; "
                          f"choose one of {', '.join(choices)}.{hint}")


def validate_cfg(cfg: CN, source: str = "", origins: dict | None = None) -> None:
    """Range and consistency checks; raises ConfigError naming the key and the fix, prefixed
    with the file or override (``origins``: key -> source, from load_cfg) the value came from."""
    from .registry import model_family, model_types
    source = _Source(source, origins)
    _choice(cfg.MODEL.TYPE, model_types(), source, "MODEL.TYPE")
    _choice(cfg.DATA.DATASET, _data_package().layout_names(), source, "DATA.DATASET")
    _choice(cfg.DATA.DECODER, ("decord", "pyav", "frames"), source, "DATA.DECODER")
    _choice(cfg.DATA.SAMPLING, ("segment", "dense"), source, "DATA.SAMPLING")
    transforms = _data_package().transforms  # the operations the pipeline keys choose from
    _choice(cfg.DATA.RESIZE_ROUNDING, transforms.RESIZE_ROUNDINGS, source, "DATA.RESIZE_ROUNDING")
    _choice(cfg.TEST.THREE_CROP, transforms.THREE_CROP_LAYOUTS, source, "TEST.THREE_CROP")
    _choice(cfg.AUG.RANDAUG_POSITION, transforms.RANDAUG_POSITIONS, source,
            "AUG.RANDAUG_POSITION")
    _choice(cfg.AUG.RANDAUG_INTERPOLATION, transforms.RANDAUG_INTERPOLATIONS, source,
            "AUG.RANDAUG_INTERPOLATION")
    _choice(str(cfg.TRAIN.AMP), ("off", "fp16", "bf16"), source, "TRAIN.AMP")
    for key in ("TRAIN.COMPILE", "TEST.COMPILE"):
        section, name = key.split(".")
        _choice(cfg[section][name], COMPILE_MODES, source, key)
    _choice(cfg.TRAIN.NAN_POLICY, ("stop", "skip"), source, "TRAIN.NAN_POLICY")
    _choice(cfg.TRAIN.OPTIMIZER.NAME.lower(), ("adamw", "sgd"), source, "TRAIN.OPTIMIZER.NAME")
    _choice(cfg.TRAIN.LR_SCHEDULER.NAME, ("cosine", "linear", "step"), source,
            "TRAIN.LR_SCHEDULER.NAME")
    _choice(cfg.DIST.BACKEND, ("auto", "nccl", "gloo"), source, "DIST.BACKEND")
    _choice(cfg.DIST.DEVICE, ("auto", "cuda", "cpu"), source, "DIST.DEVICE")
    _choice(cfg.TEST.BAD_VIDEO_POLICY, ("exclude", "fail"), source, "TEST.BAD_VIDEO_POLICY")

    positive = ["DATA.NUM_FRAMES", "DATA.BATCH_SIZE", "DATA.IMG_SIZE", "DATA.INPUT_SIZE",
                "MODEL.TUBELET_SIZE", "TEST.NUM_CLIP", "TEST.BATCH_SIZE", "SAVE_FREQ",
                "PRINT_FREQ", "DATA.FRAME_INTERVAL", "AUG.FRAME_INTERVAL", "TRAIN.EVAL_FREQ"]
    for key in positive:
        value = cfg
        for part in key.split("."):
            value = value[part]
        _require(value > 0, source, key, f"must be a positive number, got {value}")
    _require(cfg.DATA.NUM_WORKERS >= 0, source, "DATA.NUM_WORKERS", "must be >= 0")
    _require(cfg.MODEL.NUM_CLASSES >= 0, source, "MODEL.NUM_CLASSES", "must be >= 0")
    _require(cfg.TRAIN.EPOCHS >= 0, source, "TRAIN.EPOCHS", "must be >= 0")
    _require(cfg.TRAIN.TOTAL_STEPS >= 0, source, "TRAIN.TOTAL_STEPS",
             "must be 0 (epoch-based: TRAIN.EPOCHS) or a number of optimiser updates")
    synthetic = cfg.DATA.SYNTHETIC
    for name, low in (("NUM_TRAIN", 1), ("NUM_VAL", 1), ("NUM_FRAMES", 1), ("SIZE", 8)):
        _require(synthetic[name] >= low, source, f"DATA.SYNTHETIC.{name}",
                 f"must be at least {low}, got {synthetic[name]}")
    _require(synthetic.SIZE % 2 == 0, source, "DATA.SYNTHETIC.SIZE",
             f"must be even (H.264 yuv420p), got {synthetic.SIZE}")
    _require(cfg.TRAIN.ACCUMULATION_STEPS >= 0, source, "TRAIN.ACCUMULATION_STEPS", "must be >= 0")
    _require(cfg.TEST.RESIZE_SCALE >= 1.0, source, "TEST.RESIZE_SCALE",
             f"must be at least 1 (the centre crop needs a short side of at least DATA.INPUT_SIZE),"
             f" got {cfg.TEST.RESIZE_SCALE}")
    _require(cfg.AUG.TRAIN_RESIZE_SCALE >= 0, source, "AUG.TRAIN_RESIZE_SCALE",
             f"must be 0 (no resize) or positive, got {cfg.AUG.TRAIN_RESIZE_SCALE}")
    _require(cfg.TEST.NUM_CROP in (1, 3), source, "TEST.NUM_CROP",
             f"must be 1 (centre crop) or 3 (three crops), got {cfg.TEST.NUM_CROP}")
    _require(cfg.DATA.SPLIT in (1, 2, 3), source, "DATA.SPLIT", "must be 1, 2 or 3")
    for key in ("MODEL.DROP_PATH_RATE", "MODEL.DROP_RATE", "AUG.FLIP_RATIO", "AUG.COLOR_JITTER",
                "AUG.GRAY_SCALE", "AUG.REPROB", "AUG.MIXUP_PROB", "AUG.MIXUP_SWITCH_PROB",
                "AUG.LABEL_SMOOTH", "MODEL.LABEL_SMOOTHING", "DATA.MAX_BAD_FRACTION"):
        section, name = key.split(".")
        value = cfg[section][name]
        _require(0.0 <= value <= 1.0, source, key, f"must lie in [0, 1], got {value}")
    for key in ("DATA.MEAN", "DATA.STD"):
        value = cfg.DATA[key.split(".")[1]]
        _require(len(value) in (0, 3), source, key, "give 3 values (RGB) or leave empty")

    try:
        model_family(cfg.MODEL.TYPE).validate(cfg)
    except ConfigValueError as err:  # the family names the key; add where the value came from
        origin = _origin(source, err.key)
        raise ConfigError(f"{origin}: {err}" if origin else str(err), key=err.key) from None
    except ValueError as err:  # a check that names no key: the file or --opts as a whole
        origin = str(source)
        raise ConfigError(f"{origin}: {err}" if origin else str(err)) from None

