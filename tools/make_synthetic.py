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

from datasets.synthetic import MARKER, generate_synthetic  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="", help="output folder (default: DATA.ROOT of --cfg, "
                                                  "else data/synthetic)")
    parser.add_argument("--cfg", default="", help="take DATA.SYNTHETIC.* settings from a config")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-val", type=int, default=None)
    parser.add_argument("--num-frames", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    parser.add_argument("--force", action="store_true", help="overwrite an existing set")
    args = parser.parse_args(argv)

    from engine.config import get_cfg, load_cfg
    cfg = load_cfg(args.cfg, args.opts) if (args.cfg or args.opts) else get_cfg()
    s = cfg.DATA.SYNTHETIC
    out = args.out or cfg.DATA.ROOT or "data/synthetic"
    if os.path.isfile(os.path.join(out, MARKER)) and not args.force:
        sys.exit(f"{out} already holds a synthetic set ({MARKER}); use --force to overwrite")
    pick = lambda value, default: default if value is None else value  # noqa: E731
    settings = generate_synthetic(out, pick(args.num_train, s.NUM_TRAIN), pick(args.num_val, s.NUM_VAL),
                                  pick(args.num_frames, s.NUM_FRAMES), pick(args.size, s.SIZE),
                                  pick(args.seed, s.SEED), workers=args.workers)
    print(f"wrote {settings['num_train']} train + {settings['num_val']} val clips to {out} "
          f"(train.csv, val.csv, classes.txt)")


if __name__ == "__main__":
    main()
