"""Video-FocalNet's config keys (``MODEL.FOCAL``), their checks, config -> constructor arguments.

Key names are those of the official Video-FocalNets ``config.py``, so released config files load
unchanged. ``MODEL.TUBELET_SIZE`` is an official top-level MODEL key and stays with the common
keys (engine/config.py); the checks here read it.
"""
from __future__ import annotations

import difflib
import logging

from yacs.config import CfgNode as CN

from common.errors import ConfigValueError

from .model import VARIANTS
from .modulation import ST_DESIGNS

logger = logging.getLogger(__name__)

__all__ = ["INPUT_PIPELINE", "add_focal_config", "validate_focal_config", "model_kwargs_from_cfg",
           "variant_of"]

# The official input pipeline (TalalWasim/Video-FocalNets, datasets/build.py and
# datasets/pipeline.py), as config values; engine.config fills them where a config is silent.
INPUT_PIPELINE = {
    "DATA.DECODER": "decord",  # DecordInit/DecordDecode, pipeline.py:1794-1846
    "DATA.SAMPLING": "segment",  # SampleFrames (TSN), build.py:268, 307, 320
    "DATA.RESIZE_ROUNDING": "half_up",  # Resize -> mmcv.rescale_size: int(side * f + 0.5)
    "AUG.TRAIN_RESIZE_SCALE": 256 / 224,  # Resize(scale=(-1, int(256/224*S))), build.py:264, 270
    "AUG.RANDAUG_POSITION": "after_crop",  # no RandAugment in the official pipeline
    "AUG.RANDAUG_INTERPOLATION": "random",
    "TEST.RESIZE_SCALE": 256 / 224,  # one crop: Resize(-1, 256) + CenterCrop, build.py:309-310
    "TEST.THREE_CROP": "mmaction",  # ThreeCrop: left, right at 2*((W-S)//2), middle, 1509-1525
}


def add_focal_config(cfg: CN) -> None:
    """Add ``MODEL.FOCAL`` with its defaults (the official ones; Video-FocalNet-T sizes)."""
    focal = CN()
    focal.PATCH_SIZE = 4  # stem patch size (ignored with USE_CONV_EMBED: kernel 7, stride 4)
    focal.IN_CHANS = 3  # input channels
    focal.EMBED_DIM = 96  # stage-0 width; stages double it (T/S 96, B 128)
    focal.DEPTHS = [2, 2, 6, 2]  # blocks per stage (T 2-2-6-2, S/B 2-2-18-2)
    focal.MLP_RATIO = 4.0  # MLP hidden width / block width
    focal.PATCH_NORM = True  # LayerNorm after the stem
    focal.FOCAL_LEVELS = [2, 2, 2, 2]  # focal levels per stage
    focal.FOCAL_WINDOWS = [3, 3, 3, 3]  # kernel of level 0 per stage (odd); level l: 2l+window
    focal.FOCAL_FACTORS = [2, 2, 2, 2]  # informational: the reference hard-wires factor 2
    focal.USE_CONV_EMBED = False  # overlapping conv stem (7x7 s4) and downsamplers (3x3 s2)
    focal.USE_LAYERSCALE = False  # learnable per-channel residual scales gamma_1/gamma_2
    focal.LAYERSCALE_VALUE = 1e-4  # initial value of the layer scales
    focal.USE_POSTLN = False  # norm after the mixer/MLP instead of before
    focal.USE_POSTLN_IN_MODULATION = False  # LayerNorm inside the modulation before proj
    focal.NORMALIZE_MODULATOR = False  # divide aggregated contexts by (levels + 1)
    focal.ST_DESIGN = "parallel"  # one of ST_DESIGNS: how time enters the token mixer
    cfg.MODEL.FOCAL = focal


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigValueError(key, message)


def validate_focal_config(cfg: CN) -> None:
    """Raise ``ConfigValueError("MODEL.FOCAL.X", "what is wrong; what to do")`` for a config that
    cannot build a Video-FocalNet."""
    f = cfg.MODEL.FOCAL
    if f.ST_DESIGN not in ST_DESIGNS:
        close = difflib.get_close_matches(str(f.ST_DESIGN), ST_DESIGNS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigValueError("MODEL.FOCAL.ST_DESIGN", f"unknown value {f.ST_DESIGN!r}; choose "
                               f"one of {', '.join(ST_DESIGNS)}.{hint}")
    ts = cfg.MODEL.TUBELET_SIZE
    _require(ts >= 1, "MODEL.TUBELET_SIZE", f"must be a positive number, got {ts}")
    _require(cfg.DATA.NUM_FRAMES % ts == 0, "DATA.NUM_FRAMES",
             f"{cfg.DATA.NUM_FRAMES} frames cannot be split into tubelets of MODEL.TUBELET_SIZE "
             f"{ts}; use a multiple of {ts}")
    _require(not (f.USE_CONV_EMBED and ts > 1), "MODEL.FOCAL.USE_CONV_EMBED",
             "the conv stem works per frame and cannot be combined with MODEL.TUBELET_SIZE > 1")
    num_stages = len(f.DEPTHS)
    _require(num_stages >= 1 and all(d >= 1 for d in f.DEPTHS), "MODEL.FOCAL.DEPTHS",
             f"give at least one stage of at least one block, got {list(f.DEPTHS)}")
    for key in ("FOCAL_LEVELS", "FOCAL_WINDOWS"):
        values = list(f[key])
        _require(len(values) == num_stages, f"MODEL.FOCAL.{key}",
                 f"needs one value per stage ({num_stages}, as MODEL.FOCAL.DEPTHS), got {values}")
    _require(all(v >= 1 for v in f.FOCAL_LEVELS), "MODEL.FOCAL.FOCAL_LEVELS",
             "every stage needs at least one focal level")
    _require(all(w >= 1 and w % 2 == 1 for w in f.FOCAL_WINDOWS), "MODEL.FOCAL.FOCAL_WINDOWS",
             f"windows must be odd (kernels 2l+window keep the size only when odd), got "
             f"{list(f.FOCAL_WINDOWS)}")
    _require(f.EMBED_DIM > 0 and f.PATCH_SIZE > 0 and f.MLP_RATIO > 0, "MODEL.FOCAL.EMBED_DIM",
             "EMBED_DIM, PATCH_SIZE and MLP_RATIO must be positive")
    # Like the reference, sizes that are not multiples of the strides work (convolutions floor);
    # only a resolution that collapses to nothing before the last stage is an error.
    size = cfg.DATA.IMG_SIZE
    resolution = (size + 2 * 2 - 7) // 4 + 1 if f.USE_CONV_EMBED else size // f.PATCH_SIZE
    resolutions = [resolution]
    for _ in range(num_stages - 1):
        resolution = (resolution - 1) // 2 + 1 if f.USE_CONV_EMBED else resolution // 2
        resolutions.append(resolution)
    _require(min(resolutions) >= 1, "DATA.IMG_SIZE",
             f"{size} pixels leave no tokens after {num_stages} stages (token grids "
             f"{resolutions}); use a larger DATA.IMG_SIZE or fewer stages")


def variant_of(model_type: str) -> str:
    """``videofocalnet_tiny`` / ``video_focalnet_tiny`` -> ``tiny``."""
    size = model_type.rsplit("_", 1)[-1]
    if not model_type.replace("_", "").startswith("videofocalnet") or size not in VARIANTS:
        raise ValueError(f"MODEL.TYPE {model_type!r} is not a Video-FocalNet variant; use "
                         f"videofocalnet_{{{','.join(VARIANTS)}}}")
    return size


def model_kwargs_from_cfg(cfg: CN) -> dict:
    """VideoFocalNet constructor arguments from a config (every size key is honoured)."""
    focal = cfg.MODEL.FOCAL
    custom = cfg.MODEL.TYPE == "videofocalnet_custom"
    named = None if custom else VARIANTS[variant_of(cfg.MODEL.TYPE)]
    if named and (focal.EMBED_DIM != named["embed_dim"]
                  or tuple(focal.DEPTHS) != tuple(named["depths"])):
        logger.warning("MODEL.TYPE %s is embed_dim %d, depths %s, but MODEL.FOCAL has EMBED_DIM "
                       "%d, DEPTHS %s: building the config's sizes (MODEL.TYPE videofocalnet_custom "
                       "takes the sizes without this warning)", cfg.MODEL.TYPE,
                       named["embed_dim"], list(named["depths"]), focal.EMBED_DIM,
                       list(focal.DEPTHS))
    return dict(
        img_size=cfg.DATA.IMG_SIZE, patch_size=focal.PATCH_SIZE, in_chans=focal.IN_CHANS,
        num_classes=cfg.MODEL.NUM_CLASSES, embed_dim=focal.EMBED_DIM, depths=tuple(focal.DEPTHS),
        mlp_ratio=focal.MLP_RATIO, drop_rate=cfg.MODEL.DROP_RATE,
        drop_path_rate=cfg.MODEL.DROP_PATH_RATE, patch_norm=focal.PATCH_NORM,
        focal_levels=tuple(focal.FOCAL_LEVELS), focal_windows=tuple(focal.FOCAL_WINDOWS),
        use_conv_embed=focal.USE_CONV_EMBED, use_layerscale=focal.USE_LAYERSCALE,
        layerscale_value=focal.LAYERSCALE_VALUE, use_postln=focal.USE_POSTLN,
        use_postln_in_modulation=focal.USE_POSTLN_IN_MODULATION,
        normalize_modulator=focal.NORMALIZE_MODULATOR, num_frames=cfg.DATA.NUM_FRAMES,
        tubelet_size=cfg.MODEL.TUBELET_SIZE, st_design=focal.ST_DESIGN,
        use_checkpoint=cfg.TRAIN.USE_CHECKPOINT)
