#!/usr/bin/env python
"""Turn a raw dataset layout into the project's list files, or check an existing list.

    python tools/prepare_dataset.py --dataset ucf101 --root /data/ucf101 --split 1 --out data/ucf101
    python tools/prepare_dataset.py --dataset kinetics400 --root /data/k400 --out data/k400 \
        [--train-file train.csv --val-file validate.csv]
    python tools/prepare_dataset.py --validate data/ucf101/train.csv --root /data/ucf101

Writes OUT/train.csv and OUT/val.csv (`path,label` lines, paths relative to --root, so set
DATA.ROOT to --root) and OUT/classes.txt, after checking every entry: missing or empty video
files, labels outside the class list, duplicate entries. Missing files are reported and left out
of the written lists. Exit status 1 when problems were found (0 otherwise).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import layout_names, load_annotations  # noqa: E402
from datasets.annotations import AnnotationError, read_class_names, read_list_file  # noqa: E402
from datasets.decoding import list_frame_files  # noqa: E402
from datasets.fileio import atomic_write_text  # noqa: E402


def check_samples(samples, num_classes, name: str, frames: bool = False):
    """(good samples, problems): problems is a list of human-readable lines."""
    from tqdm import tqdm
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
    lines = []
    for video, label in samples:
        rel = os.path.relpath(video, root) if root else video
        if "," in rel:
            raise AnnotationError(f"{video}: paths with commas cannot be written to a "
                                  f"`path,label` list; rename the file")
        lines.append(f"{rel},{label}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def prepare(args) -> int:
    from engine.config import get_cfg
    cfg = get_cfg()
    cfg.DATA.DATASET, cfg.DATA.ROOT, cfg.DATA.SPLIT = args.dataset, args.root, args.split
    cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = args.train_file, args.val_file
    cfg.DATA.LABEL_LIST = args.label_list
    os.makedirs(args.out, exist_ok=True)
    status, classes = 0, None
    for split, out_name in (("train", "train.csv"), ("val", "val.csv")):
        samples, classes = load_annotations(cfg, split)
        good, problems = check_samples(samples, len(classes) if classes else None, split)
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
    classes = read_class_names(args.label_list) if args.label_list else None
    samples = read_list_file(args.validate, args.root)
    good, problems = check_samples(samples, len(classes) if classes else None, args.validate,
                                   frames=args.frames)
    _report(args.validate, len(samples), problems)
    return 1 if problems else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    args = parser.parse_args(argv)
    try:
        if args.validate:
            return validate(args)
        if not (args.dataset and args.out):
            parser.error("give --dataset NAME --root DIR --out DIR, or --validate FILE")
        return prepare(args)
    except AnnotationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
