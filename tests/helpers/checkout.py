"""The repository the tests run from: whether it is a git checkout (the --baseline harnesses
archive another revision with git; a copy without .git skips those tests)."""
from __future__ import annotations

import subprocess

from tests.helpers.shared import REPO_ROOT


def is_git_checkout() -> bool:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True).returncode == 0
    except OSError:
        return False
