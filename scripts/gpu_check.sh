#!/usr/bin/env bash
# Everything that needs a GPU, in one command (details: tools/gpu_check.py):
#   bash scripts/gpu_check.sh [--quick] [--out DIR] [--budget-s SECONDS]
# Runs the GPU-marked tests and tools/benchmark.py on the GPU, writes DIR/gpu_report.json and
# DIR/gpu_summary.txt (DIR defaults to gpu_check/) and prints the summary. Under 8 minutes on one
# GPU. Without CUDA every GPU check is reported as skipped and the exit status is 0 (CI runs it).
# The interpreter: $PYTHON if set, else `python` when it imports torch, else the repository's
# .venv (created and installed by scripts/_venv.sh, as scripts/test.sh does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${PYTHON:-}" ]; then
  if command -v python >/dev/null 2>&1 && python -c "import torch" >/dev/null 2>&1; then
    PYTHON=python
  else
    # shellcheck disable=SC1091
    source scripts/_venv.sh
    PYTHON=python
  fi
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" tools/gpu_check.py "$@"
