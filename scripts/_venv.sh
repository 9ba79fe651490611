# Sourced by demo.sh and test.sh: create .venv if missing, install once, activate.
# Re-running is cheap: the install is skipped while requirements.txt and setup.py are unchanged.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"

pick_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo "error: no python3 found; install Python 3.11" >&2; exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(pick_python)"
  echo "[setup] creating virtual environment $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

STAMP="$VENV/.installed-$(cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/setup.py" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "[setup] installing requirements (first run: about a minute from the local wheel cache)"
  LOG="$VENV/install.log"
  if ! { python -m pip install --disable-pip-version-check -q -r "$REPO_ROOT/requirements.txt" &&
         python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$REPO_ROOT"; } >"$LOG" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$LOG" >&2 || true
    echo "error: installation failed (full log: $LOG)" >&2
    exit 1
  fi
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
else
  echo "[setup] environment up to date ($VENV)"
fi
# The deploy extra (inference runtimes, requirements-deploy.txt) when asked for: scripts/test.sh
# asks, so that the export/runtime tests run; the demo does not need it.
if [ "${VIDEO_DEPLOY_EXTRAS:-0}" = "1" ]; then
  DEPLOY_STAMP="$VENV/.deploy-$(sha256sum "$REPO_ROOT/requirements-deploy.txt" | cut -c1-16)"
  if [ ! -f "$DEPLOY_STAMP" ]; then
    echo "[setup] installing the deploy extra (requirements-deploy.txt: ONNX, ONNX Runtime, OpenVINO)"
    LOG="$VENV/install-deploy.log"
    if ! python -m pip install --disable-pip-version-check -q -r "$REPO_ROOT/requirements-deploy.txt" >"$LOG" 2>&1; then
      grep -v "is ignored: it is neither a file nor a directory" "$LOG" >&2 || true
      echo "error: installing the deploy extra failed (full log: $LOG)" >&2
      exit 1
    fi
    rm -f "$VENV"/.deploy-*
    touch "$DEPLOY_STAMP"
  fi
fi
# Hugging Face's `datasets` distribution installs the same top-level package as our data package.
if HF_VERSION="$(python -c 'from importlib import metadata; print(metadata.version("datasets"))' 2>/dev/null)"; then
  echo "error: Hugging Face's datasets $HF_VERSION is installed in $VENV; its top-level package" \
       "'datasets' clashes with this project's data package. Run: pip uninstall datasets," \
       "then delete $VENV/.installed-* and re-run" >&2
  exit 1
fi
cd "$REPO_ROOT"
