"""Fixtures for every test: the repository on sys.path, small threads, the shared folder.

Support code lives in the ``tests.helpers`` package (import it; never ``from conftest import``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.shared import require_shared  # noqa: E402  (needs the repository on sys.path)

# Two cores are shared by the whole suite: keep intra-op threads small and results repeatable.
torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", "2")))

# tools/test.py without --output writes to $VIDEO_EVAL_DIR (default ~/.cache/...): keep the
# suite's evaluations out of the user's home (subprocesses inherit it)
if not os.environ.get("VIDEO_EVAL_DIR"):
    import tempfile
    os.environ["VIDEO_EVAL_DIR"] = tempfile.mkdtemp(prefix="video-eval-tests-")


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    """Tests that expect one error line and no traceback hold under a developer's VIDEO_DEBUG=1
    (a test about debug output sets it itself)."""
    monkeypatch.delenv("VIDEO_DEBUG", raising=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $VIDEO_SHARED_DIR): golden vectors, real clips, label lists. Skips without
    it, fails instead under REQUIRE_GOLDEN=1 (CI)."""
    return require_shared()
