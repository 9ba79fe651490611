"""Show what a trained model looks at in a video: focal modulators or Grad-CAM.

    python tools/visualize.py --cfg CFG --checkpoint CKPT VIDEO --out DIR
        [--method modulator|gradcam] [--target CLASS] [--stage N] [--opts KEY VALUE ...]

The clip is evaluation's centre clip and centre crop (TEST.NUM_CLIP 1, TEST.NUM_CROP 1).
modulator (Video-FocalNet): the magnitude (L2 norm over channels) of the spatial modulator
h(ctx_all) and of the temporal modulator h_temporal(ctx_all_t) in the last block of stage N
(default: the last stage) -- the tensors the official code stored as `modulator` -- overlaid
on the frames. gradcam (both models): Grad-CAM of --target (a class name or index; default: the
predicted class) on the output of the last block of stage N (Vita-CLIP: the patch tokens of
vision block N, default the last). Writes DIR/<video>_<method>.png (frames x {input, maps}),
DIR/<video>_<method>.gif and the raw maps DIR/<video>_<method>.npz. The maps are captured with
forward hooks that exist only during this run; the model stores nothing.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402

METHODS = ("modulator", "gradcam")


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", metavar="VIDEO", help="a video file")
    parser.add_argument("--cfg", required=True, metavar="FILE",
                        help="config the model was trained with")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="weights: ours, or the official Video-FocalNet / Vita-CLIP files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--method", choices=METHODS, default="modulator",
                        help="modulator (Video-FocalNet) or gradcam (both models)")
    parser.add_argument("--target", metavar="CLASS",
                        help="Grad-CAM class, by name or index (default: the predicted one)")
    parser.add_argument("--stage", type=int, metavar="N",
                        help="stage (Video-FocalNet, from 0) or vision block (Vita-CLIP) whose "
                             "last block is shown (default: the last)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides")
    return parser.parse_args(argv)


def _target_index(target: str | None, names: list[str]) -> int | None:
    if target is None:
        return None
    if target.strip().lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < len(names):
            raise UsageError(f"--target {target}: the model has classes 0..{len(names) - 1}")
        return index
    lookup = {n.lower(): i for i, n in enumerate(names)}
    if target.lower() not in lookup:
        raise UsageError(f"--target {target!r} is not a class of the model (e.g. "
                         f"{', '.join(repr(n) for n in names[:5])}); give a name or an index")
    return lookup[target.lower()]


def run(args: argparse.Namespace) -> None:
    import numpy as np

    import datasets
    from common.fileio import atomic_path
    from engine.build import amp_dtype
    from engine.config import load_cfg
    from engine.contract import TextEncoder
    from engine.distributed import resolve_device
    from engine.evaluation import class_text_features
    from engine.inference import (grad_cam, load_trained_model, modulator_maps, output_names,
                                  span_views, visual_taps)
    from tools._inputs import writable_folder
    from tools._render import denormalize, gif, grid_png, heat_overlay

    if args.method == "modulator" and args.target is not None:
        raise UsageError("--target chooses the class of --method gradcam; the modulators do "
                         "not depend on a class")
    cfg = load_cfg(args.cfg, list(args.opts) + ["TEST.NUM_CLIP", 1, "TEST.NUM_CROP", 1])
    if cfg.DATA.DECODER == "frames":
        raise UsageError("tools/visualize.py reads video files; use --opts DATA.DECODER pyav")
    if os.path.isdir(args.video):
        raise IsADirectoryError(f"VIDEO {args.video} is a folder; tools/visualize.py draws one "
                                f"video: give a video file")
    if os.path.exists(args.video) and not os.path.isfile(args.video):
        raise UsageError(f"VIDEO {args.video} is not a regular file (a FIFO, device or "
                         f"socket); give a video file")
    if not os.path.isfile(args.video):
        raise FileNotFoundError(f"video {args.video} does not exist")
    writable_folder(args.out, "--out")
    out_dir = args.out
    checkpoint = args.checkpoint
    device = resolve_device(cfg)
    model = load_trained_model(cfg, checkpoint, device)
    try:
        taps = visual_taps(cfg, model, args.method, args.stage)
    except ValueError as err:
        raise UsageError(f"--method {args.method}"
                         f"{'' if args.stage is None else f' --stage {args.stage}'}: {err}")
    text = class_text_features(model, device, amp_dtype(cfg))
    kwargs = {} if text is None else {"text_features": text}
    clip = span_views(cfg, args.video, None)[0][:1].to(device)  # (1, T, C, S, S)
    count = datasets.count_frames(args.video, cfg.DATA.DECODER)
    positions = datasets.eval_frame_indices(cfg, count).tolist()

    # --stage counts stages of Video-FocalNet, vision blocks of a model with a text side
    unit = "vision block" if isinstance(model, TextEncoder) else "stage"
    stage = f"the last {unit}" if args.stage is None else f"{unit} {args.stage}"
    if args.method == "modulator":
        maps, probs = modulator_maps(model, clip, taps, kwargs)
        names = output_names(cfg, probs.numel())
        columns = {f"{name} modulator": m for name, m in maps.items()}
        what = f"modulators of {stage}"
    else:
        names = output_names(cfg, len(text) if text is not None else model.num_classes)
        maps, probs, target = grad_cam(model, clip, taps, _target_index(args.target, names),
                                       kwargs)
        maps = {"gradcam": maps["features"]}
        columns = {f"Grad-CAM: {names[target]}": maps["gradcam"]}
        what = f"Grad-CAM of '{names[target]}' ({probs[target]:.3f}) on {stage}"
    top = probs.topk(min(3, probs.numel()))
    predicted = ", ".join(f"{names[i]} {p:.3f}" for p, i in zip(top.values.tolist(),
                                                                 top.indices.tolist()))
    mean, std = datasets.normalization(cfg)
    frames = denormalize(clip[0], mean, std)
    panels = {"input": frames}
    for title, m in columns.items():
        panels[title] = heat_overlay(frames, m)[0]
    stem = f"{os.path.splitext(os.path.basename(args.video))[0]}_{args.method}"
    title = f"{os.path.basename(args.video)}: {what}; predicted {predicted}"
    png = grid_png(os.path.join(out_dir, f"{stem}.png"), panels, title,
                   row_label=lambda i: f"frame {positions[i]}")
    animation = gif(os.path.join(out_dir, f"{stem}.gif"), panels)
    raw = os.path.join(out_dir, f"{stem}.npz")
    with atomic_path(raw) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v.cpu().numpy() for k, v in maps.items()}, frames=frames,
                     frame_positions=np.asarray(positions))
    print(f"{args.video}: predicted {predicted}")
    print(f"{what}: {', '.join(f'{k} {tuple(v.shape)}' for k, v in maps.items())} "
          f"(frames x height x width)")
    if any(tuple(v.shape[-2:]) == (1, 1) for v in maps.values()):
        print(f"note: at {cfg.DATA.INPUT_SIZE} px input the maps of {stage} are 1 x 1: they "
              f"change only over time, not over the frame; an earlier --stage shows where")
    print(f"grid PNG: {png}")
    print(f"GIF:      {animation}")
    print(f"maps:     {raw}")


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
