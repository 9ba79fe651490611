#!/usr/bin/env bash
# Train on several machines: run this once on EVERY node with the same arguments.
#   scripts/multinode_train.sh CONFIG NNODES NPROC_PER_NODE HOST:PORT [tools/train.py arguments...]
#   e.g. (on each of 2 nodes) scripts/multinode_train.sh cfg.yaml 2 8 node01:29500
# HOST:PORT is the c10d rendezvous endpoint (any node's reachable address; usually the first).
# RDZV_ID (default: vr-<config name>) must be the same on every node and unique per job.
# DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 CONFIG NNODES NPROC_PER_NODE HOST:PORT [tools/train.py arguments...]" >&2
  exit 2
fi
CFG=$1
NNODES=$2
NPROC=$3
ENDPOINT=$4
shift 4
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RDZV_ID=${RDZV_ID:-vr-$(basename "$CFG" .yaml)}
CMD=("$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --nproc_per_node "$NPROC"
     --rdzv-backend c10d --rdzv-endpoint "$ENDPOINT" --rdzv-id "$RDZV_ID"
     tools/train.py --cfg "$CFG" "$@")
if [ "${DRY_RUN:-0}" = "1" ]; then
  echo "${CMD[@]}"
  exit 0
fi
exec "${CMD[@]}"
