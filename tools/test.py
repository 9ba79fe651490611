"""Evaluate a checkpoint with multi-view testing: ``tools/test.py --cfg FILE --checkpoint PATH``.

``--checkpoint`` also takes a model-zoo name (``python tools/download_weights.py --list``), which is
downloaded once and verified; ``--cfg`` then defaults to the config the weights were released with.
An exported model (``tools/export.py``: .onnx, .xml) runs under ``--runtime`` onnxruntime or
openvino, and ``--runtime`` with a checkpoint exports it first (docs/deploy.md).

Results go to --output (or OUTPUT); when neither is given and the config names no OUTPUT (a
zoo name without --cfg always), to $VIDEO_EVAL_DIR/<checkpoint name>, $VIDEO_EVAL_DIR being
~/.cache/video-recognition/eval unless set.

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

DEFAULT_EVAL_DIR = os.path.join("~", ".cache", "video-recognition", "eval")


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", metavar="FILE",
                        help="config YAML (default for a zoo name: its released config)")
    parser.add_argument("--checkpoint", required=True, metavar="PATH|NAME",
                        help="weights: ours, the official Video-FocalNet / Vita-CLIP files, or a "
                             "model-zoo name such as video_focalnet_tiny_k400")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "tensorrt"),
                        help="what runs the model (default: torch for a checkpoint, onnxruntime "
                             "for .onnx, openvino for .xml, tensorrt for .engine)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts TEST.NUM_CLIP 4 TEST.NUM_CROP 3")
    parser.add_argument("--batch-size", type=int, help="TEST.BATCH_SIZE (videos per process)")
    parser.add_argument("--output", help="OUTPUT (where results are written; default: the "
                        "config's OUTPUT when it sets one, else $VIDEO_EVAL_DIR/<checkpoint>, "
                        "$VIDEO_EVAL_DIR defaulting to ~/.cache/video-recognition/eval)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help="ignored: torchrun passes LOCAL_RANK in the environment")
    return parser.parse_args(argv)


def released_config(checkpoint: str) -> str:
    """The config a zoo checkpoint was released with (for a run without --cfg)."""
    from engine import zoo
    from engine.config import ConfigError
    entry = zoo.lookup(checkpoint)
    if entry is None and not os.path.exists(checkpoint) and zoo.looks_like_a_name(checkpoint):
        try:  # a mistyped zoo name: say so (with the close names), not "--cfg is needed"
            zoo.get(checkpoint)
        except KeyError as err:
            raise FileNotFoundError(f"--checkpoint {err.args[0]}") from None
    if entry is None or not entry.configs:
        raise ConfigError("--cfg FILE is needed (the checkpoint is not a model-zoo name with a "
                          "released config)")
    return entry.configs[0]  # load_cfg finds bundled configs from any directory


def check_model_checkpoint(checkpoint: str) -> None:
    """Only weights of a whole trained model can be evaluated: a zoo entry of initialisation
    weights (a 2-D FocalNet, a CLIP backbone) is refused before anything is fetched, and a
    folder is named as such."""
    from engine import zoo
    from tools._cli import UsageError
    if os.path.isdir(checkpoint):
        raise IsADirectoryError(f"--checkpoint {checkpoint} is a directory; give the path of "
                                f"a checkpoint file (.pth)")
    entry = None if os.path.exists(checkpoint) else zoo.lookup(checkpoint)
    if entry is not None and entry.key != "--checkpoint":
        raise UsageError(f"--checkpoint {checkpoint} is {entry.what}: initialisation weights "
                         f"for {entry.key}, not a trained model; give a trained checkpoint "
                         f"(`python tools/download_weights.py --list` shows the models: use "
                         f"with --checkpoint)")


def default_output(checkpoint: str) -> str:
    """Where an evaluation writes when neither --output nor OUTPUT is given: a folder named
    after the checkpoint under $VIDEO_EVAL_DIR (default ~/.cache/video-recognition/eval), never
    a folder inside the current directory or the checkout."""
    from engine import zoo
    root = os.path.expanduser(os.environ.get("VIDEO_EVAL_DIR") or DEFAULT_EVAL_DIR)
    entry = None if os.path.exists(checkpoint) else zoo.lookup(checkpoint)
    if entry is not None:
        name = entry.name
    else:
        absolute = os.path.abspath(checkpoint)
        parent = os.path.basename(os.path.dirname(absolute))
        stem = os.path.splitext(os.path.basename(absolute))[0]
        name = f"{parent}-{stem}" if parent else stem
    return os.path.join(root, name)


def _output_given(args) -> bool:
    if args.output is not None:
        return True
    return any(key == "OUTPUT" for key in args.opts[::2])


def run(args: argparse.Namespace) -> None:
    from engine import zoo
    from engine.checkpoint import require_checkpoint_file
    from engine.config import get_cfg
    from engine.evaluation import test
    from engine.runtime import inference_cfg, is_exported
    check_model_checkpoint(args.checkpoint)
    opts = list(args.opts)
    if args.batch_size is not None:
        opts += ["TEST.BATCH_SIZE", str(args.batch_size)]
    if args.output is not None:
        opts += ["OUTPUT", args.output]
    exported = is_exported(args.checkpoint)  # brings its settings: --cfg may be left out
    cfg_file = args.cfg or (None if exported else released_config(args.checkpoint))
    cfg = inference_cfg(cfg_file, args.checkpoint, opts)
    if not _output_given(args) and (args.cfg is None or cfg.OUTPUT == get_cfg().OUTPUT):
        # a released config (or one that names no OUTPUT): results go to the documented
        # default, not into output/default of whatever folder the command runs in
        cfg = cfg.clone()
        cfg.defrost()
        cfg.OUTPUT = default_output(args.checkpoint)
        cfg.freeze()
    checkpoint = zoo.resolve(args.checkpoint, "--checkpoint")  # a zoo name: fetched here
    require_checkpoint_file(checkpoint)
    test(cfg, checkpoint, runtime=args.runtime)


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
