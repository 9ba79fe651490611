"""Zero-shot evaluation of a Vita-CLIP checkpoint by class names only.

    python tools/zero_shot.py --cfg configs/vita_clip/k400_b16.yaml --checkpoint CKPT \
        --protocol k600|hmdb51|ucf101|custom [--opts KEY VALUE ...]

The config is the one the checkpoint was trained with; DATA.ROOT (and DATA.LABEL_LIST for
`custom`) point at the target dataset. Per-split top-1/top-5 and mean ± std (population, ddof=0)
go to the terminal and OUTPUT/zero_shot_results.json. Works under torchrun for multi-GPU eval.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.config import ConfigError, load_cfg  # noqa: E402
from engine.zero_shot import LABELS_DIR, PROTOCOLS, run_zero_shot  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", required=True, help="config of the trained Vita-CLIP model")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint: ours (engine format) or the reference's ({'model': ...})")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--labels-dir", default=str(LABELS_DIR),
                        help="folder with the class lists and the K600 novel splits")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from engine import distributed
    from engine.checkpoint import CheckpointError
    try:
        cfg = load_cfg(args.cfg, args.opts)
        run_zero_shot(cfg, args.checkpoint, args.protocol, user_opts=args.opts,
                      labels_dir=args.labels_dir)
    except (ConfigError, FileNotFoundError, PermissionError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
