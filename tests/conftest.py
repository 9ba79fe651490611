"""Shared test fixtures: repository paths, the shared conformance/data folder, small threads."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Two cores are shared by the whole suite: keep intra-op threads small and results repeatable.
torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", "2")))

# tools/test.py without --output writes to $VIDEO_EVAL_DIR (default ~/.cache/...): keep the
# suite's evaluations out of the user's home (subprocesses inherit it)
if not os.environ.get("VIDEO_EVAL_DIR"):
    import tempfile
    os.environ["VIDEO_EVAL_DIR"] = tempfile.mkdtemp(prefix="video-eval-tests-")


def _shared_dir() -> Path:
    env = os.environ.get("VIDEO_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $VIDEO_SHARED_DIR): golden vectors, real clips, label lists."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared folder not found at {path}; set VIDEO_SHARED_DIR")
    return path


def golden_files(pattern: str) -> list[Path]:
    """Every golden file matching `pattern` (used for parametrisation at collection time)."""
    return sorted((_shared_dir() / "golden").glob(pattern))
