"""Another git revision's code beside this one, for before/after runs on the same machine.

``git archive REV PATHS`` is extracted into a temporary folder: the loader harness imports the
baseline's ``datasets`` from there under another name, the model guard runs a worker process
with that folder first on its import path. Only a git checkout can do this.
"""
from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

__all__ = ["REPO_ROOT", "LIBRARY_PACKAGES", "archive_revision", "describe_revision"]

REPO_ROOT = Path(__file__).resolve().parents[3]
# what a model, its family and the engine helpers the harness calls are made of
LIBRARY_PACKAGES = ("engine", "datasets", "video_focalnet", "vita_clip")


def archive_revision(revision: str, folder: str | Path, paths=LIBRARY_PACKAGES) -> Path:
    """Extract ``paths`` as of ``revision`` into ``folder``; ValueError (naming the revision and
    git's message) when git cannot."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", revision, *paths],
                                 cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise ValueError(f"--baseline {revision}: git archive failed in {REPO_ROOT} (a git "
                         f"checkout is needed): {detail.decode(errors='replace').strip() or err}"
                         ) from err
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def describe_revision(revision: str) -> str:
    """``REV`` as a short commit hash (``REV`` itself where git cannot say)."""
    out = subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else revision
