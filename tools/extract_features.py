"""Extract pre-logit features of videos to .npy.

    python tools/extract_features.py --cfg CFG --checkpoint CKPT --input LIST_OR_DIR --out DIR
        [--window SECONDS [--stride SECONDS]] [--runtime torch|onnxruntime|openvino]
        [--opts KEY VALUE ...]
    torchrun --nproc_per_node 4 tools/extract_features.py ...     # every video once across ranks

Writes DIR/features.npy (float32 [N, D], or [N, windows, D] with --window; NaN where a shorter
video has no window) and DIR/index.csv (row, window, video, start_s, end_s, start_frame,
end_frame). Video-FocalNet: the pooled features before the head; Vita-CLIP: the video
embeddings; each averaged over evaluation's TEST.NUM_CLIP x TEST.NUM_CROP views. Resumable:
finished videos are kept in DIR/parts and skipped by a re-run; every file is written atomically.
A video that cannot be decoded is reported and left out (exit status 1).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", metavar="FILE", help="config the model was trained with "
                        "(not needed for an exported model: its JSON has the settings)")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="weights: ours, the official Video-FocalNet / Vita-CLIP files, or "
                             "a model exported by tools/export.py (.onnx, .xml)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "tensorrt"),
                        help="what runs the model (default: torch for a checkpoint, onnxruntime "
                             "for .onnx, openvino for .xml, tensorrt for .engine); docs/deploy.md")
    parser.add_argument("--input", required=True, nargs="+", metavar="LIST_OR_DIR",
                        help="list files (`path` or `path,label` lines), folders of videos "
                             "(searched at any depth) or video files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--window", type=float, metavar="SECONDS",
                        help="features per window of this length instead of per video")
    parser.add_argument("--stride", type=float, metavar="SECONDS",
                        help="start a window every this many seconds (default: --window)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts TEST.NUM_CLIP 4 TEST.NUM_CROP 3")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help="ignored: torchrun passes LOCAL_RANK in the environment")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from engine.checkpoint import require_checkpoint_file
    from engine.runtime import inference_cfg
    from tools.workflows.features import extract_features
    from tools._inputs import check_window
    check_window(args.window, args.stride)
    cfg = inference_cfg(args.cfg, args.checkpoint, list(args.opts) + ["OUTPUT", args.out])
    if cfg.DATA.DECODER == "frames":
        raise UsageError("tools/extract_features.py reads video files; DATA.DECODER frames is "
                         "for folders of frames: use --opts DATA.DECODER pyav (or decord)")
    checkpoint = args.checkpoint
    require_checkpoint_file(checkpoint)
    return extract_features(cfg, checkpoint, args.input, args.out, args.window, args.stride,
                            runtime=args.runtime)


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
