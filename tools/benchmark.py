"""Speed of a registered model (clips/s, inference and training step) or of the data loader.

    python tools/benchmark.py --model video_focalnet_tiny --threads 2 --compare-reference
    python tools/benchmark.py --model vita_clip_b16 --batch-sizes 1 --json
    python tools/benchmark.py --model vita_clip_b16 --runs --batch 2 --threads 2
    python tools/benchmark.py --loader
    python tools/benchmark.py --runtimes onnxruntime openvino --model video_focalnet_tiny \
        --threads 2 [--memory]        # exported models beside eager and the reference

See tools/workflows/benchmark.py for every option (or --help); --runtimes:
tools/workflows/runtime_benchmark.py.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.workflows.benchmark import main as model_benchmark  # noqa: E402


def main(argv=None) -> int:
    if "--runtimes" in (sys.argv[1:] if argv is None else argv):  # exported models: own harness
        from tools.workflows.runtime_benchmark import main as runtime_benchmark
        return runtime_benchmark(argv)
    return model_benchmark(argv)


if __name__ == "__main__":
    sys.exit(main())
