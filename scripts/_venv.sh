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

# install_once NAME HASH LOG START FAILURE COMMAND...: run COMMAND (output to $VENV/LOG) unless
# the stamp $VENV/NAME-HASH is there; on success that stamp replaces NAME's older ones. Status 1
# when the stamp was there (nothing to do).
install_once() {
  local name="$1" stamp="$VENV/$1-$2" log="$VENV/$3" start="$4" failure="$5"
  shift 5
  [ -f "$stamp" ] && return 1
  echo "[setup] $start"
  if ! "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
    echo "error: $failure (full log: $log)" >&2
    exit 1
  fi
  rm -f "$VENV/$name"-*
  touch "$stamp"
}

PIP=(python -m pip install --disable-pip-version-check -q)
install_project() {
  "${PIP[@]}" -r "$REPO_ROOT/requirements.txt" &&
    "${PIP[@]}" --no-deps --no-build-isolation -e "$REPO_ROOT"
}

HASH="$(cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/setup.py" | sha256sum | cut -c1-16)"
if ! install_once .installed "$HASH" install.log \
    "installing requirements (first run: about a minute from the local wheel cache)" \
    "installation failed" install_project; then
  echo "[setup] environment up to date ($VENV)"
fi
# The deploy extra (inference runtimes, requirements-deploy.txt) when asked for: scripts/test.sh
# asks, so that the export/runtime tests run; the demo does not need it.
if [ "${VIDEO_DEPLOY_EXTRAS:-0}" = "1" ]; then
  HASH="$(sha256sum "$REPO_ROOT/requirements-deploy.txt" | cut -c1-16)"
  install_once .deploy "$HASH" install-deploy.log \
    "installing the deploy extra (requirements-deploy.txt: ONNX, ONNX Runtime, OpenVINO)" \
    "installing the deploy extra failed" \
    "${PIP[@]}" -r "$REPO_ROOT/requirements-deploy.txt" || true
fi
# Hugging Face's `datasets` distribution installs the same top-level package as our data package.
if HF_VERSION="$(python -c 'from importlib import metadata; print(metadata.version("datasets"))' 2>/dev/null)"; then
  echo "error: Hugging Face's datasets $HF_VERSION is installed in $VENV; its top-level package" \
       "'datasets' clashes with this project's data package. Run: pip uninstall datasets," \
       "then delete $VENV/.installed-* and re-run" >&2
  exit 1
fi
cd "$REPO_ROOT"
