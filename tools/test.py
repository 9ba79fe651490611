"""Evaluate a checkpoint with multi-view testing: ``tools/test.py --cfg FILE --checkpoint PATH``.

``--checkpoint`` also takes a model-zoo name (``python tools/download_weights.py --list``), which is
downloaded once and verified; ``--cfg`` then defaults to the config the weights were released with.

Views per video: TEST.NUM_CLIP x TEST.NUM_CROP. Writes OUTPUT/eval_results.json and
OUTPUT/predictions.csv. Runs under plain ``python`` or ``torchrun`` (videos split over processes).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.config import ConfigError, load_cfg  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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


def _released_config(checkpoint: str) -> str:
    """The config a zoo checkpoint was released with (for a run without --cfg)."""
    from engine import zoo
    entry = zoo.lookup(checkpoint)
    if entry is None or not entry.configs:
        raise ConfigError("--cfg FILE is needed (the checkpoint is not a model-zoo name with a "
                          "released config)")
    repo_copy = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             entry.configs[0])
    return repo_copy if os.path.isfile(repo_copy) else entry.configs[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    opts = list(args.opts)
    if args.batch_size is not None:
        opts += ["TEST.BATCH_SIZE", str(args.batch_size)]
    if args.output is not None:
        opts += ["OUTPUT", args.output]
    from engine import zoo
    cfg_path = args.cfg
    try:
        if cfg_path is None:
            cfg_path = _released_config(args.checkpoint)
        cfg = load_cfg(cfg_path, opts)
        checkpoint = zoo.resolve(args.checkpoint, "--checkpoint")  # a zoo name: fetched here
    except (ConfigError, zoo.WeightsUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.checkpoint = checkpoint
    if not os.path.isfile(args.checkpoint):
        print(f"error: --checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    from engine.evaluation import test
    from engine.trainer import run_job
    return run_job(test, cfg, args.checkpoint)


if __name__ == "__main__":
    sys.exit(main())
