"""Parameters and GFLOPs (fvcore) per view and for the full test views, per model and design.

    python tools/flops.py                                   # every registered model x design
    python tools/flops.py --models video_focalnet_tiny --designs parallel,joint --json
    python tools/flops.py --cfg configs/video_focalnet/kinetics400/base.yaml [--opts K V ...]

The models are those the registry knows (each family's ``benchmark_names``); a family that has
designs (``designs``) is counted once per design. The counting convention is engine/flops.py's:
one multiply-add = one FLOP; element-wise ops only with ``--elementwise``.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def _row(name: str, design: str, frames: int, size: int, views: int, params: int,
         gflops: float, uncounted: dict) -> dict:
    return {"model": name, "design": design, "num_frames": frames, "img_size": size,
            "params_m": round(params / 1e6, 3), "gflops_per_view": round(gflops, 2),
            "views": views, "gflops_total": round(gflops * views, 1),
            "uncounted_ops": sorted(uncounted)}


def rows_for_registry(models: list[str], designs: list[str] | None, frames: int, size: int,
                      views: int, num_classes: int, elementwise: bool) -> list[dict]:
    """One row per registered model (x design); unknown models or designs are a UsageError."""
    import torch

    from engine.build import count_parameters
    from engine.contract import HasDesigns
    from engine.flops import count_gflops
    from engine.registry import family_for_variant, model_families

    known_designs = {d for f in model_families() if isinstance(f, HasDesigns) for d in f.designs}
    unknown = sorted(set(designs or ()) - known_designs)
    if unknown:
        raise UsageError(f"--designs: unknown {unknown}; choose from "
                         f"{', '.join(sorted(known_designs))}")
    rows = []
    for name in models:
        try:
            family = family_for_variant(name)
        except KeyError as err:
            raise UsageError(f"--models: {err.args[0]}") from None
        family_designs = tuple(family.designs) if isinstance(family, HasDesigns) else ()
        chosen = [d for d in (designs or family_designs) if d in family_designs]
        for design in chosen or [None]:
            options = {"num_frames": frames, "img_size": size, "num_classes": num_classes}
            if design is not None:
                options["design"] = design
            torch.manual_seed(0)
            built = family.benchmark_models(name, batch_size=1, **options)
            _, params = count_parameters(built["model"])
            gflops, uncounted = count_gflops(built["model"], built["input"], elementwise)
            rows.append(_row(name, design or "-", frames, size, views, params, gflops,
                             uncounted))
            del built
    return rows


def row_for_cfg(path: str, opts: list[str], elementwise: bool) -> dict:
    """The row of one config's model (no weight file is read)."""
    from engine.config import load_cfg
    from engine.flops import config_cost
    from engine.registry import model_family

    cfg = load_cfg(path, opts)
    family = model_family(cfg.MODEL.TYPE)
    design = family.design_of(cfg) if hasattr(family, "design_of") else "-"
    cost = config_cost(cfg, elementwise)
    return _row(cfg.MODEL.TYPE, design, cfg.DATA.NUM_FRAMES, cfg.DATA.IMG_SIZE,
                cfg.TEST.NUM_CLIP * cfg.TEST.NUM_CROP, cost["params"], cost["gflops"],
                cost["uncounted_ops"])


def format_table(rows: list[dict]) -> str:
    header = (f"{'model':<22} {'design':<17} {'frames':>6} {'size':>5} {'params (M)':>11} "
              f"{'GFLOPs/view':>12} {'views':>6} {'GFLOPs total':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:<22} {r['design']:<17} {r['num_frames']:>6} "
                     f"{r['img_size']:>5} {r['params_m']:>11.2f} {r['gflops_per_view']:>12.2f} "
                     f"{r['views']:>6} {r['gflops_total']:>13.1f}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--cfg", help="count this config's model only")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for --cfg")
    parser.add_argument("--models", default="", help="comma-separated registered names "
                        "(default: every model the registry knows)")
    parser.add_argument("--designs", default="",
                        help="comma-separated designs (default: every design of each family)")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=400)
    parser.add_argument("--views", type=int, default=12,
                        help="test views per video (released: 4 clips x 3 crops)")
    parser.add_argument("--elementwise", action="store_true",
                        help="also count element-wise ops and norms (1 FLOP per element)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    return parser.parse_args(argv)


def run(args) -> None:
    import torch

    from engine.contract import Benchmarkable
    from engine.registry import model_families

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.cfg:
        rows = [row_for_cfg(args.cfg, args.opts, args.elementwise)]
    else:
        models = [m for m in args.models.split(",") if m] or [
            name for family in model_families() if isinstance(family, Benchmarkable)
            for name in family.benchmark_names]
        designs = [d for d in args.designs.split(",") if d] or None
        rows = rows_for_registry(models, designs, args.num_frames, args.img_size, args.views,
                                 args.num_classes, args.elementwise)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(format_table(rows))
    skipped = sorted({op for r in rows for op in r["uncounted_ops"]})
    if skipped:
        print(f"\nnot counted (element-wise / memory-bound): {', '.join(skipped)}")


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
