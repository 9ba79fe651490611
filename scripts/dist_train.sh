#!/usr/bin/env bash
# Train on one machine with NPROC processes (one per GPU; CPU runs use gloo).
#   scripts/dist_train.sh CONFIG NPROC [tools/train.py arguments...]
#   e.g. scripts/dist_train.sh configs/kinetics400/video_focalnet_tiny.yaml 8 --opts DATA.BATCH_SIZE 8
# DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [tools/train.py arguments...]" >&2
  exit 2
fi
CFG=$1
NPROC=$2
shift 2
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# --standalone: a local c10d rendezvous on a free port, so two jobs on one machine never clash.
CMD=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC"
     tools/train.py --cfg "$CFG" "$@")
if [ "${DRY_RUN:-0}" = "1" ]; then
  echo "${CMD[@]}"
  exit 0
fi
exec "${CMD[@]}"
