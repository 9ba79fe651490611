#!/usr/bin/env bash
# Train under SLURM: srun starts one torchrun per node; torchrun starts GPUS_PER_NODE processes.
#   PARTITION=gpu NNODES=2 GPUS_PER_NODE=8 scripts/slurm_train.sh CONFIG [tools/train.py args...]
# Inside an sbatch/salloc allocation PARTITION may be left empty (the allocation is used).
# Environment: PARTITION, NNODES (1), GPUS_PER_NODE (8), CPUS_PER_TASK (GPUS_PER_NODE * 8),
#   JOB_NAME (video-train), PORT (29500, rendezvous port on the first node), SRUN_ARGS (extra).
# DRY_RUN=1 prints the srun command instead of running it.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: [PARTITION=p NNODES=n GPUS_PER_NODE=g] $0 CONFIG [tools/train.py arguments...]" >&2
  exit 2
fi
CFG=$1
shift
cd "$(dirname "$0")/.."
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-$((GPUS_PER_NODE * 8))}
JOB_NAME=${JOB_NAME:-video-train}
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}
SRUN=(srun --job-name "$JOB_NAME" --nodes "$NNODES" --ntasks-per-node 1
      --gres "gpu:$GPUS_PER_NODE" --cpus-per-task "$CPUS_PER_TASK" --kill-on-bad-exit=1)
if [ -n "${PARTITION:-}" ]; then
  SRUN+=(--partition "$PARTITION")
fi
# shellcheck disable=SC2206  # SRUN_ARGS is a word list on purpose
SRUN+=(${SRUN_ARGS:-})
# Each task resolves the first node of the allocation as the c10d rendezvous host.
LAUNCH='HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1); exec "$0" -m torch.distributed.run --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" --rdzv-backend c10d --rdzv-endpoint "$HEAD:$PORT" --rdzv-id "$SLURM_JOB_ID" tools/train.py "$@"'
export GPUS_PER_NODE PORT
CMD=("${SRUN[@]}" bash -c "$LAUNCH" "$PYTHON" --cfg "$CFG" "$@")
if [ "${DRY_RUN:-0}" = "1" ]; then
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
exec "${CMD[@]}"
