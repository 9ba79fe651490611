"""Released weights by name: list them, download and verify them once (engine/zoo.py).

  python tools/download_weights.py --list                 # name, what, size, cached or not
  python tools/download_weights.py video_focalnet_tiny_k400 openai:ViT-B/16
  python tools/download_weights.py --all
  python tools/download_weights.py --markdown             # the zoo table of docs/model_zoo.md

Files go to $VIDEO_WEIGHTS_DIR (else ~/.cache/video-recognition/weights); $VIDEO_WEIGHTS_MIRROR
(a URL or a folder holding the same file names) is tried before the published sources. Prints
the path of each file; exit code 2 when a name is unknown or a file cannot be had.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import zoo  # noqa: E402
from tools._cli import UsageError, make_main, new_parser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = new_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="zoo names (or aliases)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="every file of the zoo")
    what.add_argument("--list", action="store_true", help="show the zoo and what is cached")
    what.add_argument("--markdown", action="store_true", help="print the zoo as a Markdown table")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    args = parser.parse_args(argv)
    if not (args.names or args.all or args.list or args.markdown):
        parser.error("give NAME..., --all, --list or --markdown")
    if args.names and (args.all or args.list or args.markdown):
        parser.error("NAME... cannot be combined with --all, --list or --markdown")
    return args


def _size(path: str, entry: zoo.Weights) -> str:
    size = os.path.getsize(path) if os.path.isfile(path) else entry.size
    return f"{size / 2 ** 20:.0f} MiB" if size else "?"


def listing() -> str:
    """The zoo as a plain-text table with the cache state of each file."""
    rows = [("name", "what", "size", "cached")]
    for entry in zoo.entries().values():
        path = zoo.cached_path(entry.name)
        rows.append((entry.name, entry.what, _size(path, entry),
                     "yes" if os.path.isfile(path) else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]
             for row in rows]
    return "\n".join(lines) + f"\n\ncache: {zoo.weights_dir()}\n"


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(zoo.zoo_markdown())
        return 0
    if args.list:
        sys.stdout.write(listing())
        return 0
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    names = list(zoo.entries()) if args.all else args.names
    try:
        entries = [zoo.get(name) for name in names]
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    failed = 0
    for entry in entries:  # one unavailable file does not stop the others
        try:
            print(zoo.fetch(entry.name, progress=not args.quiet))
        except zoo.WeightsUnavailable as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
