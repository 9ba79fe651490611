"""Run an ablation: train + evaluate every variant of an ablation file, then tabulate and plot.

    python tools/ablate.py --cfg configs/BASE.yaml --ablation configs/ablations/ABL.yaml \
        --output output/ablation_x [--nproc N] [--opts KEY VALUE ...]

Resumable: re-running skips finished variants and resumes an interrupted one. Writes
OUTPUT/ablation.md, ablation.csv and ablation.png (ablation files: tools/workflows/ablation.py;
the runner: tools/workflows/experiments.py).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def parse_args(argv=None):
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--cfg", required=True, help="base config file")
    parser.add_argument("--ablation", required=True,
                        help="YAML with a top-level `variants:` list of {name, opts}")
    parser.add_argument("--output", required=True, help="folder for the runs and the reports")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes per variant; > 1 launches torchrun (one per GPU)")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="KEY VALUE overrides for every variant (a variant's own opts win)")
    return parser.parse_args(argv)


def run(args) -> int:
    from tools.workflows.ablation import load_ablation
    from tools.workflows.experiments import VariantRunError, rows_markdown, run_experiments
    if args.nproc < 1:
        raise UsageError("--nproc must be >= 1")
    variants = load_ablation(args.ablation, args.cfg, args.opts)
    title = f"Ablation {os.path.splitext(os.path.basename(args.ablation))[0]}"
    try:
        rows = run_experiments(variants, args.cfg, args.output, args.opts, nproc=args.nproc,
                               title=title)
    except VariantRunError as err:  # e.g. a torchrun launch that failed (its log says why)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(rows_markdown(rows, title))
    print(f"reports: {os.path.join(args.output, 'ablation.md')}, ablation.csv, ablation.png")
    return 0


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
