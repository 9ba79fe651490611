"""Parameters and GFLOPs (fvcore) per view and for the full test views, per model and design.

    python tools/flops.py                                   # every registered model x design
    python tools/flops.py --models video_focalnet_tiny --designs parallel,joint --json
    python tools/flops.py --cfg configs/video_focalnet/kinetics400/base.yaml [--opts K V ...]

Convention: one multiply-add counts as one FLOP (fvcore / thop, and the paper's GFLOPs), for
convolutions, linear layers, matrix products and attention. Element-wise work (GELU, gating
products, means, LayerNorm) is memory-bound and not counted unless ``--elementwise`` is given
(then one FLOP per output element, LayerNorm 5 per element).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from typing import Any

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

DESIGNS = ("parallel", "spatial", "spatial_temporal", "temporal_spatial", "joint")
ELEMENTWISE_OPS = ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::gelu",
                   "aten::mean", "aten::softmax", "aten::sigmoid", "aten::exp")
VIEW_OPS = ("aten::unflatten", "aten::flatten", "aten::split_with_sizes", "aten::unbind",
            "aten::expand_as", "aten::repeat")  # shape changes: nothing to count
logger = logging.getLogger("flops")


def _shape(value) -> list[int]:
    return list(value.type().sizes())


def _sdpa_flops(inputs: list, outputs: list) -> int:
    """scaled_dot_product_attention: Q K^T and A V, one multiply-add each per element."""
    q, k, v = (_shape(x) for x in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1]


def _baddbmm_flops(inputs: list, outputs: list) -> int:
    a, b = _shape(inputs[1]), _shape(inputs[2])
    return a[0] * a[1] * a[2] * b[2]


def count_gflops(model: nn.Module, video: torch.Tensor, elementwise: bool = False
                 ) -> tuple[float, dict[str, int]]:
    """GFLOPs of one forward pass on ``video`` and the ops fvcore saw but did not count."""
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer warnings
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.jit_handles import elementwise_flop_counter, norm_flop_counter

        analysis = FlopCountAnalysis(model, (video,))
        analysis.set_op_handle(**{"aten::scaled_dot_product_attention": _sdpa_flops,
                                  "aten::baddbmm": _baddbmm_flops})
        analysis.set_op_handle(**{op: None for op in VIEW_OPS})
        if elementwise:
            analysis.set_op_handle(**{op: elementwise_flop_counter(0, 1) for op in ELEMENTWISE_OPS})
            analysis.set_op_handle(**{"aten::layer_norm": norm_flop_counter(1)})
        else:
            for op in ("aten::layer_norm", "aten::group_norm", "aten::batch_norm",
                       "aten::instance_norm", "aten::adaptive_avg_pool2d"):
                analysis._op_handles.pop(op, None)  # fvcore counts norms by default; None alone
                analysis.set_op_handle(op, None)    # only marks the op as ignored
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
        skipped = dict(analysis.unsupported_ops())
    return total / 1e9, skipped


def _registered_models() -> list[str]:
    import timm

    import video_focalnet  # noqa: F401  (registers video_focalnet_*)
    names = sorted(timm.list_models("video_focalnet_*"),
                   key=lambda n: ("tiny", "small", "base").index(n.rsplit("_", 1)[-1]))
    try:
        import vita_clip  # noqa: F401  (registers vita_clip_b16)
    except Exception as err:  # noqa: BLE001 - optional part
        logger.info("vita_clip not importable (%s): skipping Vita-CLIP", err)
    return names + sorted(timm.list_models("vita_clip_*"))


def _row(model: nn.Module, name: str, design: str, frames: int, size: int, views: int,
         elementwise: bool) -> dict[str, Any]:
    params = sum(p.numel() for p in model.parameters())
    video = torch.randn(1, frames, 3, size, size)
    gflops, skipped = count_gflops(model, video, elementwise)
    return {"model": name, "design": design, "num_frames": frames, "img_size": size,
            "params_m": round(params / 1e6, 3), "gflops_per_view": round(gflops, 2),
            "views": views, "gflops_total": round(gflops * views, 1),
            "uncounted_ops": sorted(skipped)}


def rows_for_registry(models: list[str], designs: list[str], frames: int, size: int,
                      views: int, num_classes: int, elementwise: bool) -> list[dict]:
    import timm

    rows = []
    for name in models:
        is_vfn = name.startswith("video_focalnet")
        for design in (designs if is_vfn else ["-"]):
            kwargs = dict(num_frames=frames, img_size=size, num_classes=num_classes)
            if is_vfn:
                kwargs["st_design"] = design
            try:
                torch.manual_seed(0)
                model = timm.create_model(name, **kwargs)
            except Exception as err:  # noqa: BLE001 - report and go on with the others
                print(f"note: {name} skipped ({type(err).__name__}: {err})", file=sys.stderr)
                continue
            rows.append(_row(model, name, design, frames, size, views, elementwise))
            del model
    return rows


def row_for_cfg(path: str, opts: list[str], elementwise: bool) -> dict:
    from engine.build import build_model
    from engine.config import VIDEO_FOCALNET_TYPES, load_cfg

    cfg = load_cfg(path, opts, freeze=False)
    if cfg.MODEL.TYPE in VIDEO_FOCALNET_TYPES:
        cfg.TRAIN.PRETRAINED_PATH = ""  # weights do not change the count
    model = build_model(cfg)
    design = cfg.MODEL.FOCAL.ST_DESIGN if cfg.MODEL.TYPE in VIDEO_FOCALNET_TYPES else "-"
    return _row(model, cfg.MODEL.TYPE, design, cfg.DATA.NUM_FRAMES, cfg.DATA.IMG_SIZE,
                cfg.TEST.NUM_CLIP * cfg.TEST.NUM_CROP, elementwise)


def format_table(rows: list[dict]) -> str:
    header = (f"{'model':<22} {'design':<17} {'frames':>6} {'size':>5} {'params (M)':>11} "
              f"{'GFLOPs/view':>12} {'views':>6} {'GFLOPs total':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:<22} {r['design']:<17} {r['num_frames']:>6} {r['img_size']:>5} "
                     f"{r['params_m']:>11.2f} {r['gflops_per_view']:>12.2f} {r['views']:>6} "
                     f"{r['gflops_total']:>13.1f}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", help="count this config's model only")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for --cfg")
    parser.add_argument("--models", default="", help="comma-separated registered names "
                        "(default: every video_focalnet_* and vita_clip_* model)")
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help="comma-separated Video-FocalNet designs")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=400)
    parser.add_argument("--views", type=int, default=12,
                        help="test views per video (released: 4 clips x 3 crops)")
    parser.add_argument("--elementwise", action="store_true",
                        help="also count element-wise ops and norms (1 FLOP per element)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        if args.cfg:
            rows = [row_for_cfg(args.cfg, args.opts, args.elementwise)]
        else:
            models = [m for m in args.models.split(",") if m] or _registered_models()
            if any(m.startswith("vita_clip") for m in models):
                try:
                    import vita_clip  # noqa: F401
                except Exception as err:  # noqa: BLE001
                    print(f"note: Vita-CLIP unavailable ({err}); skipping it", file=sys.stderr)
                    models = [m for m in models if not m.startswith("vita_clip")]
            import video_focalnet  # noqa: F401
            designs = [d for d in args.designs.split(",") if d]
            unknown = sorted(set(designs) - set(DESIGNS))
            if unknown:
                raise ValueError(f"--designs: unknown {unknown}; choose from {', '.join(DESIGNS)}")
            rows = rows_for_registry(models, designs, args.num_frames, args.img_size,
                                     args.views, args.num_classes, args.elementwise)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(rows))
        skipped = sorted({op for r in rows for op in r["uncounted_ops"]})
        if skipped:
            print(f"\nnot counted (element-wise / memory-bound): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
