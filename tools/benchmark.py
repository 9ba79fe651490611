"""Speed of a registered model (clips/s, inference and training step) or of the data loader.

    python tools/benchmark.py --model video_focalnet_tiny --threads 2 --compare-reference
    python tools/benchmark.py --model vita_clip_b16 --batch-sizes 1 --json
    python tools/benchmark.py --model vita_clip_b16 --runs --batch 2 --threads 2
    python tools/benchmark.py --loader

See tools/workflows/benchmark.py for every option (or --help).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.workflows.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
