"""Side-by-side speed/memory of this Vita-CLIP and the line-by-line reference port.

    python -m vita_clip.benchmark --img-size 224 --classes 400 --batch 2 --threads 2

Each measurement runs in a fresh process (peak memory = the process's peak resident set minus
its size right after the model was built). Wall time and process CPU time are reported: on a
shared machine the CPU time is the steadier of the two. A training step is forward + cross-entropy +
backward + AdamW over the trainable parameters; evaluation is a no-grad forward.
Both models hold the same weights; tests/test_vita_clip.py checks that they give the same logits.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(args) -> dict:
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from vita_clip.build import benchmark_setup
    setup = benchmark_setup(num_frames=args.frames, num_classes=args.classes,
                            img_size=args.img_size, reference=args.impl == "reference")
    model = setup["reference"] if args.impl == "reference" else setup["model"]
    if args.impl == "reference":
        del setup["model"]
    video = torch.randn(args.batch, args.frames, 3, args.img_size, args.img_size)
    if args.impl == "reference":
        video = video.transpose(1, 2).contiguous()  # the reference takes B, C, T, H, W
    labels = torch.arange(args.batch) % args.classes
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=4e-4, weight_decay=0.05)
    amp = args.amp if args.impl == "ours" else "off"
    base = _rss_mb()

    def step():
        if args.mode == "train":
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(video).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            model.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                 enabled=amp == "bf16"):
                model(video)

    step()  # warm-up (also fills the eval text cache for ours)
    times, cpu_times = [], []
    for _ in range(args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"impl": args.impl, "mode": args.mode, "amp": amp, "sec": min(times),
            "cpu_sec": min(cpu_times), "peak_mb": _peak_mb() - base, "model_mb": base}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--impl", choices=["ours", "reference"])
    parser.add_argument("--mode", choices=["train", "eval"], default="train")
    parser.add_argument("--amp", choices=["off", "bf16"], default="off")
    parser.add_argument("--runs", default="reference:train:off,ours:train:off,ours:train:bf16,"
                        "reference:eval:off,ours:eval:off",
                        help="comma list of impl:mode:amp measured in separate processes")
    args = parser.parse_args(argv)
    if args.impl:
        print(json.dumps(run_one(args)))
        return
    common = ["--img-size", str(args.img_size), "--frames", str(args.frames), "--classes",
              str(args.classes), "--batch", str(args.batch), "--threads", str(args.threads),
              "--steps", str(args.steps)]
    results = []
    for run in args.runs.split(","):
        impl, mode, amp = run.split(":")
        out = subprocess.run([sys.executable, "-m", "vita_clip.benchmark", "--impl", impl,
                              "--mode", mode, "--amp", amp] + common, capture_output=True,
                             text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{impl:9s} {mode:5s} amp={amp:4s} {result['sec']:8.2f} s/step wall "
              f"{result['cpu_sec']:8.2f} s/step CPU  peak +{result['peak_mb']:6.0f} MB "
              f"(model {result['model_mb']:.0f} MB)", flush=True)
    ref = {r["mode"]: r for r in results if r["impl"] == "reference"}
    for r in results:
        if r["impl"] == "ours" and r["mode"] in ref:
            base = ref[r["mode"]]
            print(f"ours {r['mode']} amp={r['amp']}: {base['sec'] / r['sec']:.2f}x faster (wall), "
                  f"{base['cpu_sec'] / r['cpu_sec']:.2f}x less CPU time, peak memory "
                  f"{r['peak_mb'] / max(base['peak_mb'], 1):.2f}x of the reference")


if __name__ == "__main__":
    main()
