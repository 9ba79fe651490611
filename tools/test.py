"""Evaluate a checkpoint with multi-view testing: ``tools/test.py --cfg FILE --checkpoint PATH``.

``--checkpoint`` also takes a model-zoo name (``python tools/download_weights.py --list``), which is
downloaded once and verified; ``--cfg`` then defaults to the config the weights were released with.

Views per video: TEST.NUM_CLIP x TEST.NUM_CROP. Writes OUTPUT/eval_results.json,
OUTPUT/predictions.csv and OUTPUT/scores.npy (the averaged probabilities, N x C, in
predictions.csv row order). Runs under plain ``python`` or ``torchrun`` (videos split over
processes).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", metavar="FILE",
                        help="config YAML (default for a zoo name: its released config)")
    parser.add_argument("--checkpoint", required=True, metavar="PATH|NAME",
                        help="weights: ours, the official Video-FocalNet / Vita-CLIP files, or a "
                             "model-zoo name such as video_focalnet_tiny_k400")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts TEST.NUM_CLIP 4 TEST.NUM_CROP 3")
    parser.add_argument("--batch-size", type=int, help="TEST.BATCH_SIZE (videos per process)")
    parser.add_argument("--output", help="OUTPUT (where results are written)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help="ignored: torchrun passes LOCAL_RANK in the environment")
    return parser.parse_args(argv)


def released_config(checkpoint: str) -> str:
    """The config a zoo checkpoint was released with (for a run without --cfg)."""
    from engine import zoo
    from engine.config import ConfigError
    entry = zoo.lookup(checkpoint)
    if entry is None or not entry.configs:
        raise ConfigError("--cfg FILE is needed (the checkpoint is not a model-zoo name with a "
                          "released config)")
    return entry.configs[0]  # load_cfg finds bundled configs from any directory


def run(args: argparse.Namespace) -> None:
    from engine import zoo
    from engine.config import load_cfg
    from engine.evaluation import test
    opts = list(args.opts)
    if args.batch_size is not None:
        opts += ["TEST.BATCH_SIZE", str(args.batch_size)]
    if args.output is not None:
        opts += ["OUTPUT", args.output]
    cfg = load_cfg(args.cfg or released_config(args.checkpoint), opts)
    checkpoint = zoo.resolve(args.checkpoint, "--checkpoint")  # a zoo name: fetched here
    if os.path.isdir(checkpoint):
        raise IsADirectoryError(f"--checkpoint {checkpoint} is a directory; give the path "
                                f"of a checkpoint file (.pth)")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    test(cfg, checkpoint)


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
