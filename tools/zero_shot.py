"""Zero-shot evaluation of a Vita-CLIP checkpoint by class names only.

    python tools/zero_shot.py --cfg configs/vita_clip/k400/vita_clip_b16.yaml --checkpoint CKPT \
        --protocol k600|k600_seeded|hmdb51|ucf101|custom [--opts KEY VALUE ...]

The config is the one the checkpoint was trained with; DATA.ROOT (and DATA.LABEL_LIST for
`custom`) point at the target dataset. `k600` is the published three-split protocol (the split
files bundled in datasets/protocols/); `k600_seeded` this repository's own seeded splits.
Per-split top-1/top-5 and mean ± std (population, ddof=0) go to the terminal and
OUTPUT/zero_shot_results.json. Works under torchrun for multi-GPU eval. The protocols are
described in tools/workflows/zero_shot.py and docs/protocols.md.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import new_parser, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    from tools.workflows.zero_shot import PROTOCOLS
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--cfg", required=True, help="config of the trained model")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint: ours (engine format) or the reference's ({'model': ...})")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--labels-dir", default=None,
                        help="k600_seeded: folder with the K600 class lists and seeded novel "
                             "splits (default: the lists bundled with the datasets package)")
    parser.add_argument("--protocols-dir", default=None,
                        help="k600: folder laid out like datasets/protocols/ "
                             "(k600_zero_shot/split{1,2,3}_{classes.csv,val.txt}); default: the "
                             "published files bundled with the datasets package")
    parser.add_argument("--text-cache-dir", default=None,
                        help="text-feature cache (default: MODEL.VITA.TEXT_CACHE_DIR, else "
                             "OUTPUT/text_cache)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    from engine.config import load_cfg
    from tools.workflows.zero_shot import run_zero_shot
    cfg = load_cfg(args.cfg, args.opts)
    run_zero_shot(cfg, args.checkpoint, args.protocol, user_opts=args.opts,
                  labels_dir=args.labels_dir, cache_dir=args.text_cache_dir,
                  protocols_dir=args.protocols_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
