"""Train a video model: ``tools/train.py --cfg FILE [--opts KEY VALUE ...]``.

Launch with plain ``python`` (one process) or ``torchrun`` (one or many processes, one or many
machines). The official Video-FocalNet flags are accepted and mapped onto config keys.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, metavar="FILE", help="config YAML")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts TRAIN.EPOCHS 10 DATA.BATCH_SIZE 4")
    official = parser.add_argument_group("official Video-FocalNet flags (mapped to keys)")
    official.add_argument("--batch-size", type=int, help="DATA.BATCH_SIZE (per process)")
    official.add_argument("--data-path", help="DATA.ROOT")
    official.add_argument("--resume", help="MODEL.RESUME: checkpoint to resume or evaluate")
    official.add_argument("--pretrained", help="TRAIN.PRETRAINED_PATH (2D ImageNet FocalNet)")
    official.add_argument("--accumulation-steps", type=int, help="TRAIN.ACCUMULATION_STEPS")
    official.add_argument("--use-checkpoint", action="store_true",
                          help="TRAIN.USE_CHECKPOINT True (activation checkpointing)")
    official.add_argument("--amp-opt-level", choices=["O0", "O1", "O2"],
                          help="apex level, mapped to TRAIN.AMP (O0 off, O1/O2 fp16)")
    official.add_argument("--output", help="OUTPUT (the run directory)")
    official.add_argument("--tag", help="TAG")
    official.add_argument("--eval", action="store_true",
                          help="EVAL_MODE: evaluate --resume (or OUTPUT/best.pth) only")
    official.add_argument("--throughput", action="store_true", help="THROUGHPUT_MODE")
    official.add_argument("--local_rank", "--local-rank", type=int, default=None,
                          help="ignored: torchrun passes LOCAL_RANK in the environment")
    return parser.parse_args(argv)


def args_to_opts(args: argparse.Namespace) -> list[str]:
    """The official flags as KEY VALUE overrides (applied after --opts, so flags win)."""
    opts = list(args.opts)
    mapping = [("batch_size", "DATA.BATCH_SIZE"), ("data_path", "DATA.ROOT"),
               ("resume", "MODEL.RESUME"), ("pretrained", "TRAIN.PRETRAINED_PATH"),
               ("accumulation_steps", "TRAIN.ACCUMULATION_STEPS"), ("output", "OUTPUT"),
               ("tag", "TAG"), ("amp_opt_level", "AMP_OPT_LEVEL")]
    for attr, key in mapping:
        value = getattr(args, attr, None)
        if value is not None:
            opts += [key, str(value)]
    if getattr(args, "use_checkpoint", False):
        opts += ["TRAIN.USE_CHECKPOINT", "True"]
    if getattr(args, "eval", False):
        opts += ["EVAL_MODE", "True"]
    if getattr(args, "throughput", False):
        opts += ["THROUGHPUT_MODE", "True"]
    return opts


def run(args: argparse.Namespace) -> None:
    from engine.config import load_cfg
    from engine.trainer import throughput, train
    cfg = load_cfg(args.cfg, args_to_opts(args))
    (throughput if cfg.THROUGHPUT_MODE else train)(cfg)


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
