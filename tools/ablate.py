"""Run an ablation: train + evaluate every variant of an ablation file, then tabulate and plot.

    python tools/ablate.py --cfg configs/BASE.yaml --ablation configs/ablations/ABL.yaml \
        --output output/ablation_x [--nproc N] [--opts KEY VALUE ...]

Resumable: re-running skips finished variants and resumes an interrupted one. Writes
OUTPUT/ablation.md, ablation.csv and ablation.png (see engine/experiments.py).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.config import ConfigError  # noqa: E402
from engine.experiments import load_ablation, rows_markdown, run_experiments  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", required=True, help="base config file")
    parser.add_argument("--ablation", required=True,
                        help="YAML with a top-level `variants:` list of {name, opts}")
    parser.add_argument("--output", required=True, help="folder for the runs and the reports")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes per variant; > 1 launches torchrun (one per GPU)")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="KEY VALUE overrides for every variant (a variant's own opts win)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.nproc < 1:
        print("error: --nproc must be >= 1", file=sys.stderr)
        return 2
    try:
        variants = load_ablation(args.ablation, args.cfg, args.opts)
        title = f"Ablation {os.path.splitext(os.path.basename(args.ablation))[0]}"
        rows = run_experiments(variants, args.cfg, args.output, args.opts, nproc=args.nproc,
                               title=title)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a torchrun launch that failed (its own log says why)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(rows_markdown(rows, title))
    print(f"reports: {os.path.join(args.output, 'ablation.md')}, ablation.csv, ablation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
