"""Predict the classes of any video with a trained model.

    python tools/predict.py --cfg CFG --checkpoint CKPT INPUT [INPUT ...] [--topk 5]
        [--json OUT] [--labels FILE_OR_COMMA_LIST] [--window SECONDS [--stride SECONDS]]
        [--out-video FILE] [--opts KEY VALUE ...]
    python tools/predict.py --checkpoint EXPORTED.onnx INPUT ...     # no config (docs/deploy.md)

INPUT: video files, folders (searched at any depth for videos) or list files (one video per
line, `path` or `path,label`; relative paths from the list's folder). Each video gets the views
of evaluation (TEST.NUM_CLIP x TEST.NUM_CROP, softmax averaged): its probabilities are the ones
tools/test.py computes for it. A model that scores videos against text (Vita-CLIP) predicts over
any label set given with --labels; Video-FocalNet over its class list.

--window/--stride cut each video into windows with a top-k each; the JSON gets "windows", a
timeline plot (PNG) is written beside it, and --out-video writes a copy of the (one) video with
the current top-1 label and probability on every frame. A video that cannot be decoded is
reported and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, is_disk_full, make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, folders of videos, or list files")
    parser.add_argument("--cfg", metavar="FILE", help="config the model was trained with "
                        "(not needed for an exported model: its JSON has the settings)")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="weights: ours, the official Video-FocalNet / Vita-CLIP files, or "
                             "a model exported by tools/export.py (.onnx, .xml)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "tensorrt"),
                        help="what runs the model (default: torch for a checkpoint, onnxruntime "
                             "for .onnx, openvino for .xml, tensorrt for .engine); docs/deploy.md")
    parser.add_argument("--topk", type=int, default=5, help="classes listed per video/window")
    parser.add_argument("--json", metavar="OUT", help="write every prediction to this JSON file")
    parser.add_argument("--labels", metavar="FILE_OR_LIST",
                        help="class names to predict over (a file, one per line, or "
                             "'a,b,c'); needs a model that scores videos against text")
    parser.add_argument("--text-cache-dir", metavar="DIR",
                        help="text-feature cache for --labels (default: "
                             "MODEL.VITA.TEXT_CACHE_DIR, else OUTPUT/text_cache)")
    parser.add_argument("--window", type=float, metavar="SECONDS",
                        help="cut each video into windows of this length")
    parser.add_argument("--stride", type=float, metavar="SECONDS",
                        help="start a window every this many seconds (default: --window)")
    parser.add_argument("--plot-dir", metavar="DIR",
                        help="where timeline plots go (default: beside --json)")
    parser.add_argument("--out-video", metavar="FILE",
                        help="write a copy of the video with the current top-1 on every frame")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts TEST.NUM_CLIP 4 TEST.NUM_CROP 3")
    return parser.parse_args(argv)


def _check_args(args) -> None:
    if args.topk < 1:
        raise UsageError(f"--topk {args.topk}: give at least 1")
    from tools._inputs import check_window
    check_window(args.window, args.stride)
    if args.labels is not None and not args.labels.strip():
        raise UsageError("--labels is empty: give a class file or names separated by commas, "
                         "or leave --labels out")


def _topk(probs, names: list, k: int) -> list[dict]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [{"label": names[i], "index": int(i), "prob": float(p)}
            for p, i in zip(values.tolist(), indices.tolist())]


def _table(topk: list[dict]) -> list[str]:
    width = max(20, max(len(t["label"]) for t in topk))
    lines = [f"  {'rank':>4}  {'class':<{width}}  {'prob':>6}"]
    lines += [f"  {r:>4}  {t['label']:<{width}}  {t['prob']:>6.4f}"
              for r, t in enumerate(topk, start=1)]
    return lines


def _window_lines(windows: list[dict], shown: int = 3) -> list[str]:
    lines = [f"  {'window (s)':<13}  top-{min(shown, len(windows[0]['topk']))}"]
    for w in windows:
        best = "   ".join(f"{t['label']} {t['prob']:.3f}" for t in w["topk"][:shown])
        lines.append(f"  {w['start']:>5.1f}-{w['end']:<6.1f}  {best}")
    return lines


def _text_features(args, cfg, model, device, amp, names: list[str] | None):
    """(text features or None, names or None): ``names`` (parsed --labels) through the
    text-feature cache, or the model's own class features as in evaluation (None for a
    classifier head)."""
    from engine.contract import TextEncoder
    from engine.evaluation import class_text_features
    from engine.text_classifier import zero_shot_classifier
    if names is None:
        return class_text_features(model, device, amp), None
    # a runtime runs the video tower; other labels' text goes through the PyTorch model
    text_model = getattr(model, "text_model", model)
    if text_model is None:
        raise UsageError(f"--labels with an exported model needs the PyTorch checkpoint for "
                         f"the text: --checkpoint CKPT.pth --cfg CFG --runtime "
                         f"{model.runtime} (the exported {args.checkpoint} has its own classes "
                         f"built in)")
    if not isinstance(text_model, TextEncoder):
        raise UsageError(f"--labels needs a model that scores videos against text (one with "
                         f"encode_text, e.g. MODEL.TYPE vita_clip); the {cfg.MODEL.TYPE} model "
                         f"of --cfg {args.cfg} predicts only the classes it was trained on: "
                         f"leave --labels out")
    from tools.workflows.zero_shot import default_text_cache_dir
    cache = args.text_cache_dir or default_text_cache_dir(cfg)
    if os.path.exists(cache) and not os.path.isdir(cache):
        raise NotADirectoryError(f"--text-cache-dir {cache} is a file, not a folder; give a "
                                 f"folder for the cached text features")
    return zero_shot_classifier(text_model, names, cache), names


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from datasets import VideoDecodeError
    from common.fileio import atomic_write_text
    from engine.build import amp_dtype
    from engine.distributed import resolve_device
    from engine.guards import (non_finite_rows, non_finite_videos_error,
                               refuse_overwriting_inputs, same_path)
    from engine.inference import output_names, predict_spans, video_spans
    from engine.runtime import inference_cfg, load_inference_model
    from tools._inputs import collect_videos, decode_failure, parse_labels, writable_folder

    _check_args(args)
    cfg = inference_cfg(args.cfg, args.checkpoint, args.opts)
    if cfg.DATA.DECODER == "frames":
        raise UsageError("tools/predict.py reads video files; DATA.DECODER frames is for "
                         "folders of frames: use --opts DATA.DECODER pyav (or decord)")
    videos = collect_videos(args.inputs)
    if args.out_video and len(videos) != 1:
        raise UsageError(f"--out-video draws on one video, but the inputs name {len(videos)}")
    read = [("the input", item) for item in args.inputs] + \
        [("the input video", video) for video in videos] + \
        [("--cfg", args.cfg), ("--checkpoint", args.checkpoint)]
    if args.labels and os.path.isfile(args.labels):
        read.append(("--labels", args.labels))
    for flag, written in (("--json", args.json), ("--out-video", args.out_video)):
        refuse_overwriting_inputs(written, flag, read)
    if args.json and args.out_video and same_path(args.json, args.out_video):
        raise UsageError("--json and --out-video name the same file; give two paths")
    for flag, folder in (("--json", args.json and os.path.dirname(os.path.abspath(args.json))),
                         ("--plot-dir", args.plot_dir),
                         ("--out-video", args.out_video
                          and os.path.dirname(os.path.abspath(args.out_video)))):
        if folder:  # before any work, not after the last video
            writable_folder(folder, flag)
    # parsed before the model loads: a mistyped class file is an error before any work
    labels = parse_labels(args.labels) if args.labels else None
    checkpoint = args.checkpoint
    device = resolve_device(cfg)
    amp = amp_dtype(cfg)
    model = load_inference_model(cfg, checkpoint, args.runtime, device)
    text, names = _text_features(args, cfg, model, device, amp, labels)
    # beside the JSON, spelled as --json was (relative stays relative, as in the other lines)
    plot_dir = args.plot_dir or (os.path.dirname(args.json) or "." if args.json else None)
    results, failures, used_stems, non_finite = [], [], set(), []
    bar = tqdm(videos, unit="video", desc="predict", file=sys.stderr, disable=None)
    for number, path in enumerate(bar, start=1):
        try:
            spans, count, fps = video_spans(cfg, path, args.window, args.stride)
            probs = predict_spans(model, cfg, path, spans, device, amp, text)
        except VideoDecodeError as err:
            failures.append(path)
            results.append({"video": path, "error": str(err)})
            tqdm.write(f"skipped {decode_failure(path, err)}", file=sys.stderr)
            continue
        broken = non_finite_rows(probs)
        if broken.any():  # never a NaN in the JSON or on screen: reported as an error below
            non_finite.append((path, int(broken.sum()), len(broken)))
            results.append({"video": path, "error": f"non-finite probabilities (NaN/inf) in "
                                                    f"{int(broken.sum())} of {len(broken)} "
                                                    f"window(s)"})
            tqdm.write(f"[{number}/{len(videos)}] {path}: non-finite probabilities",
                       file=sys.stderr)
            continue
        names = names or getattr(model, "meta", {}).get("class_names") or \
            output_names(cfg, probs.shape[1])
        record = {"video": path, "topk": _topk(probs.mean(0), names, args.topk)}
        lines = [f"[{number}/{len(videos)}] {path}"]
        if spans is None:
            lines += _table(record["topk"])
        else:
            record["windows"] = [{"start": s / fps, "end": e / fps,
                                  "topk": _topk(p, names, args.topk)}
                                 for (s, e), p in zip(spans, probs)]
            lines[0] += (f"  ({count} frames at {fps:g} fps, {count / fps:.1f} s; "
                         f"{len(spans)} window{'' if len(spans) == 1 else 's'})")
            lines += _window_lines(record["windows"])
            lines.append("  whole video (mean of the windows):")
            lines += _table(record["topk"])
            if plot_dir:
                from tools._render import timeline_png, unique_stem
                plot = os.path.normpath(os.path.join(
                    plot_dir, f"{unique_stem(path, used_stems)}.timeline.png"))
                timeline_png(plot, [(w["start"], w["end"]) for w in record["windows"]],
                             probs.numpy(), names, title=os.path.basename(path))
                record["timeline"] = plot
                lines.append(f"  timeline: {plot}")
        if args.out_video:
            written = _labelled_video(args.out_video, path, spans, probs, names)
            lines.append(f"  labelled video: {written}")
        results.append(record)
        tqdm.write("\n".join(lines))
    bar.close()
    if args.json:
        # allow_nan=False: strict JSON, whatever a model gives (non-finite rows are errors above)
        try:
            atomic_write_text(args.json, json.dumps(results, indent=1, allow_nan=False) + "\n")
        except OSError as err:
            if not is_disk_full(err):
                raise
            raise UsageError(f"no space left on device while writing --json {args.json}; free "
                             f"space on that disk, or give --json a path on another one") from None
        print(f"predictions: {args.json}")
    if non_finite:
        raise non_finite_videos_error(non_finite, len(videos), "probabilities", args.checkpoint,
                                      "nothing was reported for them")
    done = len(videos) - len(failures)
    print(f"{done} of {len(videos)} videos predicted"
          + (f"; {len(failures)} could not be decoded: {', '.join(failures)}" if failures
             else ""))
    return 1 if failures else 0


def _labelled_video(dst: str, path: str, spans, probs, names) -> str:
    """Each frame shows the top-1 of the window whose centre is nearest (the whole video's
    without --window)."""
    import numpy as np

    from tools._render import write_labelled_video
    best = probs.max(dim=1)
    if spans is None:
        centres = np.zeros(1)
    else:
        centres = np.array([(s + e - 1) / 2 for s, e in spans])

    def caption(frame: int, seconds: float) -> str:
        i = int(np.abs(centres - frame).argmin())
        return f"{names[int(best.indices[i])]}  {float(best.values[i]):.2f}"

    write_labelled_video(path, dst, caption)
    return dst


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
