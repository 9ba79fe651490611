#!/usr/bin/env bash
# The CPU demo from a fresh clone: set up .venv once, then train and test a tiny Video-FocalNet
# with the parallel (official) and the spatial-only design on the synthetic motion set.
# About 10 minutes on 2 CPU cores. Re-running reuses the environment, the data and finished runs.
# Extra arguments go to tools/demo.py, e.g. `bash scripts/demo.sh --quick`.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export PYTHONUNBUFFERED=1
python tools/demo.py "$@"
