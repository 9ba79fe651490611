#!/usr/bin/env python
"""Write the synthetic motion benchmark (10 classes in 5 time-reversed pairs) as H.264 mp4 files
plus train.csv / val.csv / classes.txt.

    python tools/make_synthetic.py --out data/synthetic
    python tools/make_synthetic.py --cfg configs/synthetic.yaml --out data/synthetic  # DATA.SYNTHETIC.*
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="", help="output folder (default: DATA.ROOT of --cfg, "
                                                  "else data/synthetic)")
    parser.add_argument("--cfg", default="", help="take DATA.SYNTHETIC.* settings from a config")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    parser.add_argument("--num-train", type=int, default=None, help="training clips (>= 1)")
    parser.add_argument("--num-val", type=int, default=None, help="validation clips (>= 1)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (>= 1)")
    parser.add_argument("--size", type=int, default=None, help="height = width, even, >= 8")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    parser.add_argument("--force", action="store_true", help="overwrite an existing set")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    from datasets.synthetic import MARKER, generate_synthetic, synthetic_settings
    from engine.config import get_cfg, load_cfg

    cfg = load_cfg(args.cfg, args.opts) if (args.cfg or args.opts) else get_cfg()
    s = cfg.DATA.SYNTHETIC
    pick = lambda value, default: default if value is None else value  # noqa: E731
    values = {"num_train": pick(args.num_train, s.NUM_TRAIN),
              "num_val": pick(args.num_val, s.NUM_VAL),
              "num_frames": pick(args.num_frames, s.NUM_FRAMES), "size": pick(args.size, s.SIZE),
              "seed": pick(args.seed, s.SEED)}
    try:
        synthetic_settings(**values)
    except ValueError as err:  # "synthetic num_train must be ...": name the flag
        flag = "--" + str(err).split()[1].replace("_", "-")
        raise UsageError(f"{flag}: {err}") from None
    if args.workers < 1:
        raise UsageError(f"--workers: give at least 1 process, got {args.workers}")
    out = args.out or cfg.DATA.ROOT or "data/synthetic"
    if os.path.isfile(os.path.join(out, MARKER)) and not args.force:
        raise UsageError(f"{out} already holds a synthetic set ({MARKER}); use --force to "
                         f"overwrite it")
    settings = generate_synthetic(out, workers=args.workers, **values)
    print(f"wrote {settings['num_train']} train + {settings['num_val']} val clips to {out} "
          f"(train.csv, val.csv, classes.txt)")


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
