"""Analyse evaluation runs (the OUTPUT folders of tools/test.py: scores.npy, predictions.csv).

    python tools/analyze.py confusion --scores RUN/ [--out DIR]
    python tools/analyze.py fuse RUN_A/ RUN_B/ [RUN_C/ ...] [--weights 0.6 0.4] [--out DIR]
    python tools/analyze.py compare RUN_A/ RUN_B/ [--out DIR]

confusion: row-normalised confusion matrix with class names (PNG; more than 40 classes: the most
confused pairs instead), a CSV of every confused pair, most first, and a per-class accuracy bar
plot; default --out RUN/analysis. fuse: top-1/top-5 of the weighted average of the runs'
probabilities (with --out: the fused run, readable by confusion). compare: per-class accuracy
of both runs and their difference, sorted (with --out: compare.csv).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    confusion = commands.add_parser("confusion", help="confusion matrix, confused pairs, "
                                    "per-class accuracy")
    confusion.add_argument("--scores", required=True, metavar="RUN",
                           help="tools/test.py OUTPUT folder")
    confusion.add_argument("--out", metavar="DIR", help="default: RUN/analysis")
    fuse = commands.add_parser("fuse", help="top-1/top-5 of a weighted average of runs")
    fuse.add_argument("runs", nargs="+", metavar="RUN")
    fuse.add_argument("--weights", nargs="+", type=float, metavar="W",
                      help="one weight per run (default: equal)")
    fuse.add_argument("--out", metavar="DIR", help="write the fused run here")
    compare = commands.add_parser("compare", help="per-class accuracy differences")
    compare.add_argument("runs", nargs=2, metavar="RUN")
    compare.add_argument("--out", metavar="DIR", help="write compare.csv here")
    return parser.parse_args(argv)


def _check_out(args: argparse.Namespace) -> None:
    """--out before any result is printed: a folder (not an existing file), and for fuse not one
    of the runs it reads (the fused scores.npy, predictions.csv and eval_results.json would
    replace that run's own)."""
    from engine.guards import refuse_overwriting_inputs
    out = args.out or (os.path.join(args.scores, "analysis") if args.command == "confusion"
                       else None)
    if out and os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is an existing file; give a folder to write into")
    if args.command == "fuse":
        refuse_overwriting_inputs(args.out, "--out", [("the run", r) for r in args.runs])


def run(args: argparse.Namespace) -> None:
    from tools.workflows.analysis import compare_runs, confusion_report, fuse_runs, load_run
    _check_out(args)
    try:
        if args.command == "confusion":
            confusion_report(load_run(args.scores),
                             args.out or os.path.join(args.scores, "analysis"))
        elif args.command == "fuse":
            fuse_runs([load_run(r) for r in args.runs], args.weights, args.out)
        else:
            compare_runs(load_run(args.runs[0]), load_run(args.runs[1]), args.out)
    except ValueError as err:  # runs that do not go together, bad weights: the user's input
        raise UsageError(str(err)) from None


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
