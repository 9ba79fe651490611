"""Speed of the registered models (inference and training step, against the reference port and
the machine's roofline, per instruction set), a regression guard against another revision, and
the data loader's speed per worker.

    python tools/benchmark.py --model video_focalnet_tiny --threads 2 --compare-reference
    python tools/benchmark.py --model vita_clip_b16 --batch-sizes 2 --modes train \\
        --dtypes float32 --compare-reference --roofline --isa avx2 default
    python tools/benchmark.py --model vita_clip_b16 --runs --batch-sizes 2 --threads 2
    python tools/benchmark.py --baseline main        # before you stop: under 3 minutes
    python tools/benchmark.py --loader
    python tools/benchmark.py --runtimes onnxruntime openvino --model video_focalnet_tiny \
        --threads 2 [--memory]        # exported models beside eager and the reference

See tools/workflows/benchmark/ for every harness (or --help); --runtimes:
tools/workflows/benchmark/runtimes.py.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.workflows.benchmark import main as model_benchmark  # noqa: E402


def main(argv=None) -> int:
    if "--runtimes" in (sys.argv[1:] if argv is None else argv):  # exported models: own harness
        from tools.workflows.benchmark.runtimes import main as runtime_benchmark
        return runtime_benchmark(argv)
    return model_benchmark(argv)


if __name__ == "__main__":
    sys.exit(main())
