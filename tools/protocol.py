"""Run a training protocol of the CLIP-video literature on its published split files.

    python tools/protocol.py --protocol few_shot --cfg configs/vita_clip/few_shot/hmdb51.yaml \
        --output output/few_shot_hmdb51 [--shots 2 4 8 16] [--nproc N] \
        [--opts DATA.ROOT /data/hmdb51 ...]
    python tools/protocol.py --protocol base2novel --cfg configs/vita_clip/base2novel/k400.yaml \
        --output output/b2n_k400 [--train-sets 1 2 3] [--nproc N] [--opts DATA.ROOT /data/k400 ...]

few_shot: one run per K on the K-shot list of split 1, tested on the dataset's split-1 test set;
writes OUTPUT/few_shot.{md,csv,json,png} (K -> top-1). base2novel: one run per 16-shot base set,
tested on the base and the novel classes; writes OUTPUT/base2novel.{md,csv,json} (base, novel,
harmonic mean, and their mean over the sets). The dataset is the config's DATA.DATASET. Resumable:
re-running skips finished runs. Zero-shot protocols are tools/zero_shot.py; all of them are
described in docs/protocols.md.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import UsageError, make_main, new_parser  # noqa: E402

PROTOCOLS = ("few_shot", "base2novel")


def parse_args(argv=None):
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--cfg", required=True,
                        help="recipe config (configs/vita_clip/few_shot/*.yaml, "
                             "configs/vita_clip/base2novel/*.yaml)")
    parser.add_argument("--output", required=True, help="folder for the runs and the reports")
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4, 8, 16],
                        help="few_shot: the K values to run (default: 2 4 8 16)")
    parser.add_argument("--train-sets", type=int, nargs="+", default=[1, 2, 3],
                        help="base2novel: the 16-shot base sets to run (default: 1 2 3)")
    parser.add_argument("--protocols-dir", default=None,
                        help="folder laid out like datasets/protocols/ (default: the published "
                             "files bundled with the datasets package)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes per run; > 1 launches torchrun (one per GPU)")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="KEY VALUE overrides for every run (the protocol's own files and "
                             "class lists win)")
    return parser.parse_args(argv)


def run(args) -> int:
    from tools.workflows.experiments import VariantRunError
    from tools.workflows.protocols import run_base2novel, run_few_shot
    if args.nproc < 1:
        raise UsageError("--nproc must be >= 1")
    try:
        if args.protocol == "few_shot":
            run_few_shot(args.cfg, args.output, args.opts, shots=args.shots,
                         protocols_dir=args.protocols_dir, nproc=args.nproc)
        else:
            run_base2novel(args.cfg, args.output, args.opts, train_sets=args.train_sets,
                           protocols_dir=args.protocols_dir, nproc=args.nproc)
    except VariantRunError as err:  # e.g. a torchrun launch that failed (its log says why)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
