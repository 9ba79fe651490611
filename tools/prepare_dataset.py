#!/usr/bin/env python
"""Turn a raw dataset layout into the project's list files, or check an existing list.

    python tools/prepare_dataset.py --dataset ucf101 --root /data/ucf101 --split 1 --out data/ucf101
    python tools/prepare_dataset.py --dataset kinetics400 --root /data/k400 --out data/k400 \
        [--train-file train.csv --val-file validate.csv]
    python tools/prepare_dataset.py --validate data/ucf101/train.csv --root /data/ucf101

Writes OUT/train.csv and OUT/val.csv (`path,label` lines, paths relative to --root, so set
DATA.ROOT to --root) and OUT/classes.txt, after checking every entry: missing or empty video
files, labels outside the class list, duplicate entries, and (``--decode``) videos the decoder
cannot read: each one is opened with ``--decoder`` (DATA.DECODER), its frames are counted and
its last frame is decoded, in ``--workers`` processes with a progress bar. That catches text
files renamed .mp4, truncated files and audio-only files; it is on by default for lists of up
to 5000 entries (``--decode`` / ``--no-decode`` choose). Entries with problems are reported and
left out of the written lists. Exit status 1 when problems were found, 0 otherwise; 2 for bad
input (an unreadable list or class file, a bad option), with one ``error:`` line.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402

DECODE_DEFAULT_LIMIT = 5000  # --decode is on by default for lists up to this many entries


def _decode_problem(job: tuple[str, str]) -> str | None:
    """Open one video with the decoder, count its frames and decode the last one (in a worker
    process); the problem as a line, or None."""
    import numpy as np

    from datasets.decoding import VideoDecodeError, load_frames
    path, decoder = job
    counted = []

    def last_frame(n: int):
        counted.append(n)
        return np.asarray([n - 1], dtype=np.int64)

    try:
        frames = load_frames(path, last_frame, decoder)
    except VideoDecodeError as err:
        reason = str(err)
        reason = reason[len(path) + 2:] if reason.startswith(f"{path}: ") else reason
        return f"{path}: cannot be decoded with {decoder}: {reason}"
    except Exception as err:  # noqa: BLE001 - a decoder crash is a problem of this file
        return f"{path}: cannot be decoded with {decoder}: {type(err).__name__}: {err}"
    if not counted or counted[0] <= 0 or frames.shape[0] != 1:
        return f"{path}: no video frames ({decoder})"
    return None


def decode_problems(paths: list[str], decoder: str, workers: int, name: str) -> dict[str, str]:
    """{path: problem} for the videos that ``decoder`` cannot read (progress bar, processes)."""
    from multiprocessing import get_context

    from tqdm import tqdm
    jobs = [(path, decoder) for path in paths]
    bar = tqdm(total=len(jobs), desc=f"decoding {name}", unit="video")
    problems = {}
    if workers > 1 and len(jobs) > 1:
        with get_context("fork" if os.name == "posix" else "spawn").Pool(
                min(workers, len(jobs))) as pool:
            for (path, _), problem in zip(jobs, pool.imap(_decode_problem, jobs, chunksize=4)):
                bar.update()
                if problem:
                    problems[path] = problem
    else:
        for job in jobs:
            problem = _decode_problem(job)
            bar.update()
            if problem:
                problems[job[0]] = problem
    bar.close()
    return problems


def check_samples(samples, num_classes, name: str, frames: bool = False, decode: bool = False,
                  decoder: str = "decord", workers: int = 1):
    """(good samples, problems): problems is a list of human-readable lines."""
    from tqdm import tqdm

    from datasets.decoding import list_frame_files
    problems, good = [], []
    counts = Counter(path for path, _ in samples)
    for path, label in tqdm(samples, desc=f"checking {name}", unit="video"):
        if num_classes is not None and not 0 <= label < num_classes:
            problems.append(f"{path}: label {label} outside [0, {num_classes - 1}]")
            continue
        if frames:
            if not os.path.isdir(path) or not list_frame_files(path):
                problems.append(f"{path}: missing or empty frame folder")
                continue
        elif not os.path.isfile(path):
            problems.append(f"{path}: missing file")
            continue
        elif os.path.getsize(path) == 0:
            problems.append(f"{path}: empty file (0 bytes)")
            continue
        good.append((path, label))
    if decode and good:
        unique = list(dict.fromkeys(path for path, _ in good))
        failed = decode_problems(unique, "frames" if frames else decoder, workers, name)
        problems += [failed[path] for path in unique if path in failed]
        good = [(path, label) for path, label in good if path not in failed]
    for path, count in counts.items():
        if count > 1:
            problems.append(f"{path}: listed {count} times")
    return good, problems


def _report(name: str, total: int, problems: list[str], limit: int = 20) -> None:
    print(f"{name}: {total} entries, {len(problems)} problem(s)")
    for line in problems[:limit]:
        print(f"  {line}")
    if len(problems) > limit:
        print(f"  ... and {len(problems) - limit} more")


def _write_list(path: str, samples, root: str) -> None:
    from datasets.annotations import AnnotationError
    from common.fileio import atomic_write_text
    lines = []
    for video, label in samples:
        rel = os.path.relpath(video, root) if root else video
        if "," in rel:
            raise AnnotationError(f"{video}: paths with commas cannot be written to a "
                                  f"`path,label` list; rename the file")
        lines.append(f"{rel},{label}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _decode_wanted(args, count: int) -> bool:
    if args.decode is not None:
        return args.decode
    if count > DECODE_DEFAULT_LIMIT:
        print(f"{count} entries: decoding each video is off above {DECODE_DEFAULT_LIMIT} "
              f"(use --decode to check them all)")
    return count <= DECODE_DEFAULT_LIMIT


def prepare(args) -> int:
    from datasets import load_annotations
    from common.fileio import atomic_write_text
    from engine.config import get_cfg
    cfg = get_cfg()
    cfg.DATA.DATASET, cfg.DATA.ROOT, cfg.DATA.SPLIT = args.dataset, args.root, args.split
    cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = args.train_file, args.val_file
    cfg.DATA.LABEL_LIST = args.label_list
    os.makedirs(args.out, exist_ok=True)
    status, classes = 0, None
    for split, out_name in (("train", "train.csv"), ("val", "val.csv")):
        samples, classes = load_annotations(cfg, split)
        good, problems = check_samples(samples, len(classes) if classes else None, split,
                                       decode=_decode_wanted(args, len(samples)),
                                       decoder=args.decoder, workers=args.workers)
        _report(f"{args.dataset} {split}", len(samples), problems)
        status |= bool(problems)
        _write_list(os.path.join(args.out, out_name), good, args.root)
        print(f"wrote {os.path.join(args.out, out_name)} ({len(good)} videos)")
    if classes:
        atomic_write_text(os.path.join(args.out, "classes.txt"), "\n".join(classes) + "\n")
        print(f"wrote {os.path.join(args.out, 'classes.txt')} ({len(classes)} classes)")
    print(f"train with: DATA.ROOT {args.root} DATA.TRAIN_FILE {args.out}/train.csv "
          f"DATA.VAL_FILE {args.out}/val.csv DATA.LABEL_LIST {args.out}/classes.txt "
          f"DATA.DATASET csv MODEL.NUM_CLASSES {len(classes) if classes else '?'}")
    return status


def validate(args) -> int:
    from datasets.annotations import read_class_names, read_list_file
    classes = read_class_names(args.label_list) if args.label_list else None
    samples = read_list_file(args.validate, args.root)
    good, problems = check_samples(samples, len(classes) if classes else None, args.validate,
                                   frames=args.frames,
                                   decode=_decode_wanted(args, len(samples)),
                                   decoder=args.decoder, workers=args.workers)
    _report(args.validate, len(samples), problems)
    return 1 if problems else 0


def parse_args(argv=None) -> argparse.Namespace:
    from datasets import layout_names
    from datasets.decoding import DECODERS
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=layout_names(),
                        help="raw layout to convert (a DATA.DATASET value)")
    parser.add_argument("--root", default="", help="dataset root (DATA.ROOT)")
    parser.add_argument("--split", type=int, default=1, help="official split 1-3 (HMDB51/UCF101)")
    parser.add_argument("--out", default="", help="folder for train.csv, val.csv, classes.txt")
    parser.add_argument("--train-file", default="", help="annotation file if not found from root")
    parser.add_argument("--val-file", default="", help="annotation file if not found from root")
    parser.add_argument("--label-list", default="", help="class names (id,name csv or one/line)")
    parser.add_argument("--validate", default="", help="check an existing list file instead")
    parser.add_argument("--frames", action="store_true", help="--validate: entries are frame dirs")
    parser.add_argument("--decode", action=argparse.BooleanOptionalAction, default=None,
                        help=f"open every video with the decoder (default: on for up to "
                             f"{DECODE_DEFAULT_LIMIT} entries)")
    parser.add_argument("--decoder", default="decord", choices=[d for d in DECODERS
                                                                if d != "frames"],
                        help="DATA.DECODER to check with (default decord, which falls back to "
                             "PyAV as training does)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="decoding processes")
    return parser.parse_args(argv)


def run(args) -> int:
    if args.workers < 1:
        raise UsageError(f"--workers: give at least 1 process, got {args.workers}")
    if args.validate:
        return validate(args)
    if not (args.dataset and args.out):
        raise UsageError("give --dataset NAME --root DIR --out DIR, or --validate FILE")
    return prepare(args)


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
