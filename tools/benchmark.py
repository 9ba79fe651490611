"""Speed of a registered model (clips/s, inference and training step) or of the data loader.

    python tools/benchmark.py --model video_focalnet_tiny --threads 2 --compare-reference
    python tools/benchmark.py --model vita_clip_b16 --batch-sizes 1 --json
    python tools/benchmark.py --loader

See engine/benchmark.py for every option.
"""
from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from engine.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
