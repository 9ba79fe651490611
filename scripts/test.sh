#!/usr/bin/env bash
# Create .venv if missing, install once, run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k golden`.
# The deploy extra too (ONNX Runtime, OpenVINO): the export/runtime tests need it.
export VIDEO_DEPLOY_EXTRAS="${VIDEO_DEPLOY_EXTRAS:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export PYTHONUNBUFFERED=1
set +e
python -m pytest -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit "$status"
