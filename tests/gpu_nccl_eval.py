"""Worker for tests/e2e/test_gpu.py (run by torchrun, one process per GPU): evaluate a checkpoint with
the engine's evaluate() inside an NCCL process group that this script creates itself, so the
gather of scores goes through NCCL even with a single GPU (the engine starts no process group for
one process).

    torchrun --standalone --nproc_per_node N tests/gpu_nccl_eval.py CONFIG CHECKPOINT OUT.json
        [nccl|gloo]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import build_loader  # noqa: E402
from engine.build import build_model  # noqa: E402
from engine.checkpoint import load_model_weights, safe_load  # noqa: E402
from engine.config import load_cfg  # noqa: E402
from engine.evaluation import evaluate  # noqa: E402


def main(config: str, checkpoint: str, out: str, backend: str = "nccl") -> None:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    kwargs = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(backend, **kwargs)
    try:
        cfg = load_cfg(config, ["DIST.BACKEND", backend, "DIST.DEVICE", device.type,
                                "TEST.NUM_CLIP", "2"])
        loader = build_loader(cfg, "test")
        model = build_model(cfg)
        load_model_weights(model, safe_load(checkpoint), strict=True, source=checkpoint)
        result = evaluate(model.to(device), loader, device, show_progress=False)
        if dist.get_rank() == 0:
            Path(out).write_text(json.dumps({
                "backend": dist.get_backend(), "world_size": dist.get_world_size(),
                "indices": result["indices"].tolist(), "top1": result["metrics"]["top1"]}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
