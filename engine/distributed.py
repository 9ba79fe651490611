"""Process-group setup from the launcher's environment, rank helpers and gathers.

One code path for every launch: plain ``python`` (world 1, no process group), ``torchrun`` on one
machine or many (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` come from the launcher) and
``srun`` without torchrun (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` are mapped).
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = ["DistInfo", "init_distributed", "cleanup", "is_dist", "get_rank", "get_world_size",
           "is_main_process", "barrier", "all_reduce_mean", "all_reduce_sum", "all_gather_objects",
           "broadcast_object"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str  # "" when no process group was created (world 1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return default


def _map_slurm_env() -> None:
    """`srun python tools/train.py` (one task per GPU, no torchrun): take ranks from SLURM."""
    if "RANK" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
        return  # a single task, or the script did not export MASTER_ADDR: stay single-process
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ.setdefault("MASTER_PORT", "29500")


def resolve_device(cfg, local_rank: int = 0) -> torch.device:
    """DIST.DEVICE: auto picks the local GPU when CUDA is available, else the CPU."""
    choice = cfg.DIST.DEVICE
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("DIST.DEVICE is 'cuda' but no CUDA device is visible; set "
                               "DIST.DEVICE cpu (or auto) or check CUDA_VISIBLE_DEVICES")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {count} CUDA device(s) are "
                               f"visible; launch at most {count} processes per node "
                               f"(--nproc_per_node)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(cfg) -> DistInfo:
    """Create the process group when launched with several processes; pick the device.

    Backend DIST.BACKEND: auto = nccl on CUDA, gloo on CPU. Safe to call twice (returns the
    existing setup).
    """
    _map_slurm_env()
    world_size = _env_int("WORLD_SIZE", default=1)
    rank = _env_int("RANK", default=0)
    local_rank = _env_int("LOCAL_RANK", default=0)
    device = resolve_device(cfg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = cfg.DIST.BACKEND
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise RuntimeError("DIST.BACKEND nccl needs CUDA devices; use DIST.BACKEND gloo (or auto) "
                           "for CPU runs")
    if world_size <= 1:
        return DistInfo(0, 1, local_rank, device, "")
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world_size} but {name} is not set: launch with "
                                   f"torchrun (python -m torch.distributed.run) or export it")
        kwargs = {}
        if device.type == "cuda":
            kwargs["device_id"] = device
        timeout = datetime.timedelta(minutes=cfg.DIST.TIMEOUT_MINUTES)
        store = _restart_store(rank, world_size, timeout)
        if store is not None:
            kwargs["store"] = store
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                timeout=timeout, **kwargs)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device,
                    dist.get_backend())


def _restart_store(rank: int, world_size: int, timeout: datetime.timedelta):
    """For a group that torchrun restarted (``--max-restarts``; TORCHELASTIC_RESTART_COUNT > 0):
    the launcher's store with a prefix of its own for this attempt, else None (plain env://).

    The elastic agent keeps one store across restarts, so without a prefix the keys where the
    workers of the killed attempt published their addresses are still there: a restarted rank
    can read a dead peer's address before the new peer overwrites it, and the Gloo full mesh
    then fails with "connection refused" (or waits forever). One prefix per attempt gives each
    attempt fresh keys.
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "")
    if not attempt.isdigit() or int(attempt) == 0:
        return None
    from torch.distributed import rendezvous
    store, _, _ = next(rendezvous("env://", rank=rank, world_size=world_size, timeout=timeout))
    return dist.PrefixStore(f"video-recognition/attempt-{attempt}/", store)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy; the input is untouched)."""
    out = tensor.detach().clone()
    if is_dist():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(tensor) / get_world_size()


def all_gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (picklable objects; tensors should be on the CPU)."""
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
