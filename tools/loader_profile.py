"""Where a loader worker's time goes per training clip: decoding against augmentation, PyAV
against decord, and optionally against the data code of an earlier git revision, all in one run.

    python tools/loader_profile.py [--num-iters 30] [--baseline REV] [--json out.json]
    python tools/loader_profile.py --ops [--baseline REV]   # augmentation per operator

The videos are the loader benchmark's (``make_benchmark_video``: 604x340 and 1280x720, 10 s at
25 fps, x264 veryfast with B-frames); the clips are 8 frames at 224 with the released
augmentation (colour jitter 0.8, grayscale 0.2), segment (8 over the whole video) or dense
(8 frames 8 apart) sampling. For every clip index each variant runs once, in an order that
rotates from clip to clip, so all variants see the same machine load: decode with decord, decode
with PyAV, augment those frames (``train_transform``), and with ``--baseline`` PyAV decoding and
augmentation from the ``datasets`` package at that revision (``git archive``). One intra-op
thread, as in a loader worker. Reported: median milliseconds per clip, wall-clock and process
CPU time (the steadier one on a shared machine), and the ratios augmentation / PyAV decode and
decord / PyAV (decode alone and decode + augmentation).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from datasets.benchmark import benchmark_settings, make_benchmark_video  # noqa: E402
from datasets.decoding import load_frames  # noqa: E402
from datasets.sampling import sample_dense_indices, sample_segment_indices  # noqa: E402
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform  # noqa: E402
from datasets.video_dataset import item_generator  # noqa: E402

VIDEOS = {"340p": (340, 604), "720p": (720, 1280)}


def _baseline_package(revision: str, folder: str):
    """``datasets`` as of ``revision``, imported under the name ``datasets_baseline``."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision, "datasets"], cwd=REPO,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    os.rename(os.path.join(folder, "datasets"), os.path.join(folder, "datasets_baseline"))
    sys.path.insert(0, folder)
    return (importlib.import_module("datasets_baseline.decoding"),
            importlib.import_module("datasets_baseline.transforms"))


def _indices(sampling: str, generator: torch.Generator):
    if sampling == "segment":
        return lambda n: sample_segment_indices(n, 8, 4, generator)
    return lambda n: sample_dense_indices(n, 8, 8, generator)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def profile_video(path: str, sampling: str, cfg, num_iters: int, baseline=None) -> dict:
    """Median wall/CPU ms per clip of every variant on one video, interleaved clip by clip."""
    decoders = {"decode_decord": (load_frames, "decord"), "decode_pyav": (load_frames, "pyav")}
    augmenters = {"augment": train_transform}
    if baseline is not None:
        decoders["decode_pyav_baseline"] = (baseline[0].load_frames, "pyav")
        augmenters["augment_baseline"] = baseline[1].train_transform
    times = {name: {"wall": [], "cpu": []} for name in [*decoders, *augmenters]}

    def decode(name, index):
        loader, decoder = decoders[name]
        return torch.from_numpy(loader(path, _indices(sampling, item_generator(0, 0, index)),
                                       decoder))

    def augment(name, index, frames):
        generator = item_generator(0, 0, index)
        _indices(sampling, generator)(250)  # the item draws its frames first, then augments
        return augmenters[name](frames, cfg, generator, IMAGENET_MEAN, IMAGENET_STD)

    for step in range(-1, num_iters):  # step -1: warm-up (imports, file cache), not recorded
        index = step + 1000 if step < 0 else step
        names = list(decoders) + list(augmenters)
        shift = max(step, 0) % len(names)
        frames = None
        for name in names[shift:] + names[:shift]:
            if name in decoders:
                result, wall, cpu = _timed(lambda: decode(name, index))
                frames = result if name == "decode_pyav" else frames
            else:
                if frames is None:
                    frames = decode("decode_pyav", index)
                _, wall, cpu = _timed(lambda: augment(name, index, frames))
            if step >= 0:
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
    return {name: {clock: round(statistics.median(values), 2) for clock, values in t.items()}
            for name, t in times.items()}


def ratios(medians: dict, clock: str) -> dict:
    m = {name: values[clock] for name, values in medians.items()}
    out = {"augment_over_pyav_decode": m["augment"] / m["decode_pyav"],
           "decord_over_pyav_decode": m["decode_decord"] / m["decode_pyav"],
           "decord_over_pyav_pipeline": (m["decode_decord"] + m["augment"])
           / (m["decode_pyav"] + m["augment"]),
           "pyav_clips_per_s": 1e3 / (m["decode_pyav"] + m["augment"]),
           "decord_clips_per_s": 1e3 / (m["decode_decord"] + m["augment"])}
    if "augment_baseline" in m:
        out["augment_speedup_vs_baseline"] = m["augment_baseline"] / m["augment"]
        out["pyav_decode_speedup_vs_baseline"] = m["decode_pyav_baseline"] / m["decode_pyav"]
        out["pipeline_speedup_vs_baseline"] = ((m["decode_pyav_baseline"] + m["augment_baseline"])
                                               / (m["decode_pyav"] + m["augment"]))
        out["baseline_augment_over_pyav_decode"] = m["augment_baseline"] / m["decode_pyav_baseline"]
    return {k: round(v, 3) for k, v in out.items()}


def profile_ops(path: str, cfg, num_iters: int, baseline=None, top: int = 12) -> dict:
    """Self CPU ms per clip of the augmentation's operators (torch.profiler), current code and
    ``baseline``, on PyAV-decoded segment clips of ``path``."""
    from torch.profiler import ProfilerActivity, profile
    variants = {"augment": train_transform}
    if baseline is not None:
        variants["augment_baseline"] = baseline[1].train_transform
    clips = [torch.from_numpy(load_frames(path, _indices("segment", item_generator(0, 0, i)),
                                          "pyav")) for i in range(num_iters)]
    out = {}
    for name, transform in variants.items():
        def run():
            for i, frames in enumerate(clips):
                generator = item_generator(0, 0, i)
                _indices("segment", generator)(250)
                transform(frames, cfg, generator, IMAGENET_MEAN, IMAGENET_STD)
        run()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows) / 1e3 / num_iters
        out[name] = {"total_ms": round(total, 2), "ops": [
            {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3 / num_iters, 3),
             "calls": round(e.count / num_iters, 1)} for e in rows[:top]]}
        print(f"{name}: {total:.1f} ms self CPU per clip (profiled)")
        for row in out[name]["ops"]:
            print(f"    {row['op']:<32} {row['self_ms']:8.2f} ms  {row['calls']:6.1f} calls")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-iters", type=int, default=30, help="clips per video and sampling")
    parser.add_argument("--baseline", default="", help="git revision to compare against")
    parser.add_argument("--videos", nargs="+", default=list(VIDEOS), choices=list(VIDEOS))
    parser.add_argument("--samplings", nargs="+", default=["segment", "dense"])
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--ops", action="store_true",
                        help="profile the augmentation per operator instead (340p, segment)")
    args = parser.parse_args(argv)
    cfg = benchmark_settings()  # the released configs' augmentation, as the loader benchmark
    torch.set_num_threads(1)
    results = {"num_iters": args.num_iters, "baseline": args.baseline, "cells": {}}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _baseline_package(args.baseline, tmp) if args.baseline else None
        if args.ops:
            path = os.path.join(tmp, "340p.mp4")
            make_benchmark_video(path, *VIDEOS["340p"])
            results["ops"] = profile_ops(path, cfg, args.num_iters, baseline)
        for video in ([] if args.ops else args.videos):
            path = os.path.join(tmp, f"{video}.mp4")
            make_benchmark_video(path, *VIDEOS[video])
            for sampling in args.samplings:
                medians = profile_video(path, sampling, cfg, args.num_iters, baseline)
                cell = {"ms": medians, "wall": ratios(medians, "wall"),
                        "cpu": ratios(medians, "cpu")}
                results["cells"][f"{video}/{sampling}"] = cell
                print(f"{video} {sampling}: " + ", ".join(
                    f"{name} {v['wall']:.1f} ms (cpu {v['cpu']:.1f})"
                    for name, v in medians.items()), flush=True)
                print("    wall " + json.dumps(cell["wall"]) + "\n    cpu  "
                      + json.dumps(cell["cpu"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
