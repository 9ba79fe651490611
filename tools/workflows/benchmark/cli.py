"""The ``tools/benchmark.py`` command: one parser, one flag per meaning, dispatch to a harness.

    python tools/benchmark.py --model video_focalnet_tiny [--batch-sizes 1 8] [--threads 2]
        [--dtypes float32 bfloat16] [--modes infer train] [--compare-reference]
        [--compile default] [--roofline] [--profile 15] [--isa avx2 default] [--json]
    python tools/benchmark.py --model vita_clip_b16 --runs [--batch-sizes 2 --threads 2]
    python tools/benchmark.py --baseline main        # regression guard, under 3 minutes
    python tools/benchmark.py --loader [--baseline REV] [--profile 12]

Harnesses: ``models.py`` (in-process, interleaved; default), ``isolated.py`` (``--runs``: one
process per setting, for its peak memory), ``guard.py`` (``--baseline REV`` with models: this
checkout against REV), ``loader.py`` (``--loader``). ``machine.py`` describes the CPU in every
result and measures the roofline. ``--isa`` runs the whole command once per listed instruction
set, each in a child process with that level forced (``machine.ISA_ENV``).
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

from tools._cli import UsageError, make_main, new_parser

__all__ = ["parse_args", "main"]

DEFAULTS = {  # harness -> (batch sizes, repeats) when not given
    "models": ([1, 8], 5), "runs": ([2], 2), "guard": ([1], None), "loader": (None, 30)}


def parse_args(argv=None):
    from .isolated import DEFAULT_RUNS
    from .loader import DECODERS, RESOLUTIONS, SAMPLINGS
    from .machine import ISA_CHOICES

    parser = new_parser(__doc__.split("\n")[0])
    what = parser.add_argument_group("what is measured")
    what.add_argument("--model", default=None,
                      help="a registered variant, e.g. video_focalnet_{tiny,small,base}, "
                           "vita_clip_b16 (default video_focalnet_tiny; with --baseline: "
                           "every model of the short setting)")
    what.add_argument("--design", default=None,
                      help="a design of the model's family (Video-FocalNet: its ST design)")
    what.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                      help="default: 1 8; 2 with --runs; 1 with --baseline")
    what.add_argument("--dtypes", nargs="+", default=None,
                      choices=["float32", "bfloat16", "float16"],
                      help="default: float32 bfloat16 (CPU); float32 float16 bfloat16 (GPU)")
    what.add_argument("--modes", nargs="+", default=["infer", "train"],
                      choices=["infer", "train"])
    what.add_argument("--num-frames", type=int, default=8)
    what.add_argument("--img-size", type=int, default=224)
    what.add_argument("--num-classes", type=int, default=400)
    what.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    what.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    what.add_argument("--isa", nargs="+", default=None, choices=ISA_CHOICES,
                      help="run everything once per instruction set, each in a child process "
                           "with that level forced (avx2: AVX2 kernels on an AVX-512 CPU)")
    how = parser.add_argument_group("how")
    how.add_argument("--repeats", type=int, default=None,
                     help="timed iterations, the best and the median are kept (default 5; 2 "
                          "with --runs; 3 with --baseline; clips per cell with --loader: 30)")
    how.add_argument("--warmup", type=int, default=1)
    how.add_argument("--compare-reference", action="store_true",
                     help="interleave the line-by-line reference port (same weights)")
    how.add_argument("--compile", nargs="+", default=[],
                     choices=["default", "reduce-overhead", "max-autotune"],
                     help="also time our model under torch.compile in these modes")
    how.add_argument("--runs", nargs="?", const=DEFAULT_RUNS, default=None,
                     metavar="IMPL:MODE:DTYPE,...",
                     help=f"measure each entry in its own process (default list: {DEFAULT_RUNS})")
    how.add_argument("--impl", choices=["ours", "reference"],
                     help="(internal to --runs) one measurement in this process, as JSON")
    how.add_argument("--baseline", default="", metavar="REV",
                     help="this checkout against git revision REV, interleaved (models; with "
                          "--loader the datasets package)")
    how.add_argument("--loader", action="store_true",
                     help="benchmark the data loader instead (decode and augmentation per "
                          "clip, interleaved, wall and CPU time)")
    how.add_argument("--videos", nargs="+", default=None,
                     help=f"with --loader: {' '.join(RESOLUTIONS)} or WxH")
    how.add_argument("--samplings", nargs="+", default=None, choices=SAMPLINGS)
    how.add_argument("--decoders", nargs="+", default=None, choices=DECODERS)
    report = parser.add_argument_group("report")
    report.add_argument("--profile", type=int, default=0, metavar="N",
                        help="per variant, the N ops with the most self CPU time")
    report.add_argument("--roofline", action="store_true",
                        help="also measure the machine's GEMM and convolution GFLOP/s (the "
                             "ceiling) and report each step's fraction of it")
    report.add_argument("--json", action="store_true", help="print the results as JSON")
    report.add_argument("--output", default="", metavar="FILE",
                        help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    harness = _harness(args)
    batch_sizes, repeats = DEFAULTS[harness]
    if args.batch_sizes is None:
        args.batch_sizes = batch_sizes
    if args.repeats is None:
        args.repeats = repeats
    if harness == "guard" and args.repeats is None:
        from .guard import GUARD_REPEATS
        args.repeats = GUARD_REPEATS
    return args


def _harness(args) -> str:
    if args.loader:
        return "loader"
    if args.runs or args.impl:
        return "runs"
    if args.baseline:
        return "guard"
    return "models"


def _without_isa(argv: list[str]) -> list[str]:
    """The command line minus ``--isa`` and its values."""
    out, skipping = [], False
    for token in argv:
        if token == "--isa" or token.startswith("--isa="):
            skipping = token == "--isa"
            continue
        if skipping and not token.startswith("-"):
            continue
        skipping = False
        out.append(token)
    return out


def _per_isa(args) -> dict[str, Any]:
    """The whole command once per ``--isa`` level, each in a child process."""
    from .isolated import child_run, run_child
    from .machine import isa_environment

    argv = _without_isa(args.argv)
    results = {}
    for isa in args.isa:
        try:
            env = isa_environment(isa)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if args.json:
            results[isa] = run_child(argv + ([] if "--json" in argv else ["--json"]), env)
        else:
            print(f"== --isa {isa}", flush=True)
            done = child_run(argv, env, capture=False)
            if done.returncode != 0:
                raise RuntimeError(f"--isa {isa}: the benchmark exited with {done.returncode}")
    return {"isa_runs": results}


def _run(args) -> int:
    logging.basicConfig(level=logging.WARNING)
    if args.isa:
        result = _per_isa(args)
    else:
        from .machine import cpu_info
        machine = cpu_info()
        harness = _harness(args)
        if harness == "loader":
            from .loader import run_loader_benchmark, video_size
            for video in args.videos or ():
                try:
                    video_size(video)
                except ValueError as err:
                    raise UsageError(f"--videos: {err}") from None
            result = run_loader_benchmark(args)
        elif args.impl:
            from .isolated import measure_one
            args.model = args.model or "video_focalnet_tiny"
            print(json.dumps(measure_one(args)))
            return 0
        elif harness == "runs":
            from .isolated import run_separate_processes
            args.model = args.model or "video_focalnet_tiny"
            result = run_separate_processes(args, machine)
        elif harness == "guard":
            from .guard import run_guard
            result = run_guard(args, machine)
        else:
            from .models import run_model_benchmark
            args.model = args.model or "video_focalnet_tiny"
            result = run_model_benchmark(args, machine)
    if args.output and not args.loader:  # the loader harness writes its own
        from common.fileio import atomic_write_text
        atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


main = make_main(parse_args, _run)
