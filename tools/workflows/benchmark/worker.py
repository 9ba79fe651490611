"""A model held in its own process, timed step by step on command (for ``guard.py``).

    python -m tools.workflows.benchmark.worker '{"code": DIR, "model": ..., "num_frames": ...,
        "img_size": ..., "num_classes": ..., "batch_size": ..., "modes": [...], "threads": ...}'

``code`` goes first on the import path before any project module loads, so the library packages
(``engine``, ``datasets``, ``video_focalnet``, ``vita_clip``) come from that folder (another
revision's ``git archive``) while this harness comes from the checkout. The worker builds the
model with seeded random weights, reports where its packages came from and its inference logits
on a fixed clip, then answers each line on stdin (a mode) with one timed step as a JSON line;
``quit`` ends it with its peak resident memory. Everything else the model prints goes to stderr.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> int:
    config = json.loads(sys.argv[1])
    sys.path.insert(0, config["code"])
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # only protocol lines on the real stdout
    import resource
    import time

    import torch

    from tools.workflows.benchmark.models import build_benchmark_models, make_step

    torch.set_num_threads(config["threads"])
    models, clip_shape = build_benchmark_models(config["model"], config["num_frames"],
                                                config["img_size"], config["num_classes"], False)
    model = models["ours"]
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(config["batch_size"], *clip_shape, generator=gen)
    labels = torch.randint(0, max(config["num_classes"], 1), (config["batch_size"],),
                           generator=gen)
    steps = {}
    for mode in config["modes"]:
        steps[mode] = (mode == "train", make_step(model, mode, video, labels, "cpu", "float32"))
    with torch.inference_mode():
        check = make_step(model, "infer", video, labels, "cpu", "float32")().float()
    import engine
    import video_focalnet
    import vita_clip
    packages = {m.__name__: os.path.dirname(m.__file__) for m in (engine, video_focalnet,
                                                                   vita_clip)}
    protocol.write(json.dumps({"ready": True, "packages": packages,
                               "logits": check.flatten().tolist(),
                               "isa": torch.backends.cpu.get_cpu_capability()}) + "\n")
    for line in sys.stdin:
        mode = line.strip()
        if mode == "quit":
            break
        training, step = steps[mode]
        model.train(training)
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        protocol.write(json.dumps({"s": time.perf_counter() - start,
                                   "cpu_s": time.process_time() - start_cpu}) + "\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    protocol.write(json.dumps({"peak_mb": peak}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
