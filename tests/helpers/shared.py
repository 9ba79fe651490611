"""The shared folder beside the checkout: golden vectors, real test clips, published label lists.

It is not part of the repository. ``$VIDEO_SHARED_DIR`` names it, else ``../shared`` from the
checkout. Tests that need it skip with the reason when it is missing (a clone elsewhere); CI sets
``REQUIRE_GOLDEN=1`` (``.ci/run``), which turns every such skip into a failure so that the
conformance tests cannot silently stop running.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "REQUIRE_GOLDEN"


def shared_path() -> Path:
    env = os.environ.get("VIDEO_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def missing(reason: str) -> None:
    """Skip the running test for ``reason``, or fail it when ``REQUIRE_GOLDEN=1``."""
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 makes the shared folder mandatory)")
    pytest.skip(reason)


def require_shared() -> Path:
    """The shared folder; skips (or fails, see ``missing``) when it is not there."""
    path = shared_path()
    if not path.is_dir():
        missing(f"shared folder not found at {path}; set VIDEO_SHARED_DIR")
    return path


# Stands in for the golden files when there are none, so that a parametrised test still
# collects one case, which then skips (or fails under REQUIRE_GOLDEN=1) with the reason.
NO_GOLDEN = Path("no-golden-files")


def golden_files(pattern: str) -> list[Path]:
    """Every golden file matching ``pattern``, for parametrisation at collection time;
    ``[NO_GOLDEN]`` when there is none (pass each case through ``golden_case``)."""
    found = sorted((shared_path() / "golden").glob(pattern))
    return found or [NO_GOLDEN]


def golden_case(path: Path) -> Path:
    """``path``, or a skip (a failure under ``REQUIRE_GOLDEN=1``) for the ``NO_GOLDEN`` case."""
    if path == NO_GOLDEN:
        missing(f"no golden files under {shared_path() / 'golden'}; set VIDEO_SHARED_DIR")
    return path
