#!/usr/bin/env bash
# Create .venv if missing, install once, run the test suite.
#   bash scripts/test.sh              the whole suite (what CI runs, about 10 minutes on 2 cores)
#   bash scripts/test.sh --fast       unit + conformance tests without the `slow` ones (2 minutes)
# Other arguments go to pytest, e.g. `bash scripts/test.sh -k golden`.
# The deploy extra too (ONNX Runtime, OpenVINO): the export/runtime tests need it.
export VIDEO_DEPLOY_EXTRAS="${VIDEO_DEPLOY_EXTRAS:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export PYTHONUNBUFFERED=1
args=()
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then
    args+=(-m "not slow and not gpu" tests/unit tests/conformance)
  else
    args+=("$arg")
  fi
done
set +e
python -m pytest -q "${args[@]}"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit "$status"
