"""The default config tree (YACS): every common key with its default and a one-line comment.

Key names follow the official Video-FocalNets ``config.py`` verbatim, so every released config
file loads unchanged. Keys the reference accepted but ignored are either wired (and their default
set so that the reference behaviour is reproduced) or documented as informational. Model
families add their own sections through the registry (``add_config``; e.g. ``MODEL.VITA``).

``engine.config`` is the public face: ``get_cfg()``, ``load_cfg(path, opts)``.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN

__all__ = ["COMPILE_MODES", "default_tree"]

# torch.compile modes of TRAIN.COMPILE / TEST.COMPILE (engine/compile.py)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
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
# informational (official key): nothing reads it; MODEL.NUM_CLASSES sizes the head, the mixup
# targets and evaluation, and the labels are checked against the class list (DATA.LABEL_LIST)
_C.DATA.NUM_CLASSES = 101
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


def default_tree() -> CN:
    """A fresh copy of the common defaults (without the model families' sections)."""
    return _C.clone()
