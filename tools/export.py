"""Export a trained model for an inference runtime (docs/deploy.md).

    python tools/export.py --cfg CFG --checkpoint CKPT --format onnx|openvino|tensorrt
        [--out DIR] [--opts KEY VALUE ...]

Writes DIR/<checkpoint name>.onnx (openvino: also .xml + .bin; tensorrt: also .engine, CUDA
only), each with <file>.json beside it: input layout (B, T, C, H, W) float32, frames, size,
class names, normalisation mean/std and the evaluation pipeline settings, so that
``tools/predict.py --checkpoint DIR/best.onnx VIDEO`` needs no config. DIR defaults to the
checkpoint's folder. A Vita-CLIP model is exported as its video tower with its class text
features computed once and built into the graph. Needs the deploy extra:
``pip install '.[deploy]'``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import make_main, new_parser  # noqa: E402

# engine.export.FORMATS, not imported here so that --help stays fast
FORMATS = ("onnx", "openvino", "tensorrt")


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, metavar="FILE",
                        help="config the model was trained with")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="weights: ours, or the official Video-FocalNet / Vita-CLIP files")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the "
                        "checkpoint's folder)")
    parser.add_argument("--exporter", choices=("classic", "dynamo"), default="classic",
                        help="torch.onnx.export(dynamo=False) (default: seconds) or dynamo=True "
                             "(torch.export + onnxscript: minutes; see docs/deploy.md)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts DATA.NUM_FRAMES 16")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    import json

    from engine.config import load_cfg
    from engine.export import export_model, require_module, sidecar_path
    from engine.inference import load_trained_model
    from tools._inputs import writable_folder

    cfg = load_cfg(args.cfg, args.opts)
    require_module("onnx", f"--format {args.format}")  # before the model is built
    if args.exporter == "dynamo":
        require_module("onnxscript", "--exporter dynamo")
    if args.format == "openvino":
        require_module("openvino", "--format openvino")
    out = writable_folder(args.out or os.path.dirname(os.path.abspath(args.checkpoint)), "--out")
    model = load_trained_model(cfg, args.checkpoint, "cpu")
    path = export_model(model, cfg, args.checkpoint, args.format, out, exporter=args.exporter)
    with open(sidecar_path(path), encoding="utf-8") as f:
        meta = json.load(f)
    shape = meta["input"]
    print(f"exported: {path}  (input video (B, {shape['frames']}, {shape['channels']}, "
          f"{shape['height']}, {shape['width']}) float32, {len(meta['class_names'])} classes)")
    print(f"described in: {sidecar_path(path)}")
    return 0


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
