#!/usr/bin/env python
"""Write the Kinetics-600 zero-shot class files into datasets/labels/ (run once; outputs are
checked in).

* k600_novel_classes.txt: the 220 K600 classes that are new relative to K400 (K600 order). K400
  classes that K600 renamed are matched first: case/punctuation/word-order normalisation, then
  the hand-checked RENAMED table below (see datasets/labels/README.md).
* k600_novel_split{1,2,3}.txt: 160 classes each drawn from the 220 with numpy
  default_rng([SEED, k]) (k = split number), written in K600 order.

    python tools/make_k600_splits.py            # rewrites the four files
    python tools/make_k600_splits.py --check    # exit 1 if the checked-in files differ
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.annotations import read_class_names  # noqa: E402
from common.fileio import atomic_write_text  # noqa: E402
from datasets.layouts import LABELS_DIR  # noqa: E402
from tools._cli import make_main, new_parser  # noqa: E402

LABELS = str(LABELS_DIR)
SEED = 600
SPLIT_SIZE = 160
NUM_SPLITS = 3

# K400 name -> K600 name for classes K600 renamed beyond case/punctuation/word order.
RENAMED = {
    "balloon blowing": "inflating balloons",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "making bed": "making the bed",
    "tying tie": "tying necktie",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "hugging": "hugging (not baby)",
    "opening bottle": "opening bottle (not wine)",
    "throwing ball": "throwing ball (not baseball or American football)",
    "baby waking up": "waking up",
}


def normalise(name: str) -> str:
    """Lower case, punctuation removed, words sorted: catches case/spelling-order renames."""
    return " ".join(sorted(re.sub(r"[^a-z0-9]+", " ", name.lower()).split()))


def novel_classes() -> list[str]:
    k400 = read_class_names(os.path.join(LABELS, "kinetics_400_labels.csv"))
    k600 = read_class_names(os.path.join(LABELS, "kinetics_600_labels.csv"))
    k600_set = set(k600)
    for old, new in RENAMED.items():
        assert old in k400 and new in k600_set, (old, new)
    known = {normalise(n) for n in k400} | {normalise(n) for n in RENAMED.values()}
    return [n for n in k600 if normalise(n) not in known]


def splits(novel: list[str]) -> list[list[str]]:
    out = []
    for k in range(1, NUM_SPLITS + 1):
        pick = np.random.default_rng([SEED, k]).choice(len(novel), SPLIT_SIZE, replace=False)
        out.append([novel[i] for i in sorted(pick)])
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    novel = novel_classes()
    files = {"k600_novel_classes.txt": novel}
    for k, names in enumerate(splits(novel), start=1):
        files[f"k600_novel_split{k}.txt"] = names
    status = 0
    for name, names in files.items():
        path = os.path.join(LABELS, name)
        text = "\n".join(names) + "\n"
        if args.check:
            if not os.path.isfile(path) or open(path, encoding="utf-8").read() != text:
                print(f"{path} differs from the generator output")
                status = 1
        else:
            atomic_write_text(path, text)
            print(f"wrote {path} ({len(names)} classes)")
    return status


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
