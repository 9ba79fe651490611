"""Loader speed in one worker: where a training clip's time goes, all variants in one run.

    python tools/benchmark.py --loader [--repeats 30] [--baseline REV] [--output out.json]
        [--videos 340p 720p] [--samplings segment dense] [--decoders decord pyav]
    python tools/benchmark.py --loader --profile 12 [--baseline REV]   # augmentation per op

Videos: generated H.264 files (``make_benchmark_video``: 604x340 "340p" and 1280x720 "720p", or
any ``WxH``; 10 s at 25 fps, x264 veryfast with B-frames, a keyframe every 2 s). Clips: the
training item pipeline with the released configs' settings (``benchmark_settings``: 8 frames,
224 crop, segment sampling of 8 frames over the whole video or dense sampling of 8 frames 8
apart; short-side resize, random resized crop, flip, colour jitter 0.8, grayscale 0.2,
normalisation). One intra-op thread, as in a DataLoader worker.

Variants: decode with each decoder (decord, PyAV), augment the PyAV frames (``train_transform``)
and, with ``--baseline REV``, PyAV decoding and augmentation from the ``datasets`` package at
that git revision (``revision.archive_revision``, imported as ``datasets_baseline``). For every
clip index each variant runs once, in an order that rotates from clip to clip, so all of them
see the same machine load. Reported per video and sampling: the median milliseconds per clip of
every variant, wall clock and process CPU time (the steadier one on a shared machine), and
ratios computed from those medians (augmentation / PyAV decode, decord / PyAV, clips/s per
worker, baseline speed-ups); with the machine (CPU count, model and instruction sets, load
average before and after, library versions).

``--profile N``: self CPU time per clip of the augmentation's N costliest operators
(torch.profiler), current code and baseline, on PyAV clips of the first video and sampling.

A development tool: it lives with the benchmark harness, not in the installable data package.
``run_loader_benchmark(args)`` is the entry point; ``args`` may lack any attribute (defaults as
the command line). ``args.cfg`` may carry a full config tree; without it the pipeline runs with
``benchmark_settings()``.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch

from common.fileio import atomic_write_text

from .machine import cpu_info
from .revision import archive_revision

__all__ = ["run_loader_benchmark", "make_benchmark_video", "benchmark_settings", "machine_info",
           "profile_video", "profile_ops", "ratios", "baseline_package", "video_size",
           "RESOLUTIONS", "DECODERS", "SAMPLINGS"]

RESOLUTIONS = {"340p": (340, 604), "720p": (720, 1280)}  # name -> (height, width)
DECODERS = ("decord", "pyav")
SAMPLINGS = ("segment", "dense")
VIDEO_SECONDS = 10.0
BASELINE_NAME = "datasets_baseline"


def make_benchmark_video(path: str, height: int, width: int, seconds: float = VIDEO_SECONDS,
                         fps: int = 25, gop: int = 50) -> None:
    """A textured, moving H.264 clip (libx264 veryfast, crf 23, yuv420p)."""
    import av
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 60, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((8, 8), np.float32))[:height, :width]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(gop)}
        for t in range(int(seconds * fps)):
            shift = 4.0 * t
            r = 128 + 90 * np.sin((xx + shift) / 37.0) + np.roll(texture, t, axis=1)
            g = 128 + 90 * np.sin((yy - shift) / 23.0)
            b = 128 + 90 * np.cos((xx + yy + 2 * shift) / 51.0)
            frame = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def benchmark_settings() -> SimpleNamespace:
    """The DATA / AUG values the training item pipeline reads, as in the released configs:
    8 frames, 224 crop, segment span 4 (dense: 8 frames 8 apart), colour jitter 0.8."""
    data = SimpleNamespace(NUM_FRAMES=8, INPUT_SIZE=224, FRAME_INTERVAL=8,
                           RESIZE_ROUNDING="half_up")
    aug = SimpleNamespace(SCALE=(0.08, 1.0), RATIO=(0.75, 1.3333333333333333), AUTO_AUGMENT="",
                          FLIP_RATIO=0.5, COLOR_JITTER=0.8, GRAY_SCALE=0.2, REPROB=0.0,
                          REMODE="pixel", RECOUNT=1, FRAME_INTERVAL=4,
                          TRAIN_RESIZE_SCALE=256 / 224, RANDAUG_POSITION="after_crop",
                          RANDAUG_INTERPOLATION="random")
    return SimpleNamespace(DATA=data, AUG=aug)


def video_size(name: str) -> tuple[int, int]:
    """(height, width) of a video name: a key of ``RESOLUTIONS`` or ``WxH``."""
    if name in RESOLUTIONS:
        return RESOLUTIONS[name]
    match = re.fullmatch(r"(\d+)x(\d+)", name)
    if not match:
        raise ValueError(f"unknown video {name!r}: use one of {sorted(RESOLUTIONS)} or WxH")
    return int(match.group(2)), int(match.group(1))


# ------------------------------------------------------------------------------------------------
# The machine and the baseline
# ------------------------------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # not installed, or no version
        return "-"


def machine_info() -> dict:
    """CPU count, model and instruction sets, load average, Python and library versions."""
    info = cpu_info()
    return {"nproc": info["nproc"], "cpu_count": os.cpu_count(), "cpu_model": info["cpu_model"],
            "isa": info["isa"], "load_average": info["load_average"],
            "python": platform.python_version(), "torch": torch.__version__,
            "av": _version("av"), "decord": _version("decord"), "numpy": np.__version__}


def baseline_package(revision: str, folder: str) -> SimpleNamespace:
    """``datasets`` as of git ``revision`` (``git archive`` into ``folder``), imported as
    ``datasets_baseline``: its ``decoding`` and ``transforms`` modules."""
    archive_revision(revision, folder, ["datasets"])
    os.rename(os.path.join(folder, "datasets"), os.path.join(folder, BASELINE_NAME))
    for name in [m for m in sys.modules if m.split(".")[0] == BASELINE_NAME]:
        del sys.modules[name]  # an earlier call's revision
    sys.path.insert(0, folder)
    try:
        return SimpleNamespace(decoding=importlib.import_module(f"{BASELINE_NAME}.decoding"),
                               transforms=importlib.import_module(f"{BASELINE_NAME}.transforms"))
    finally:
        sys.path.remove(folder)


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------
def _index_fn(sampling: str, cfg, generator: torch.Generator, seen: dict | None = None):
    from datasets.sampling import sample_dense_indices, sample_segment_indices

    def index_fn(n):
        if seen is not None:
            seen["n"] = n
        if sampling == "segment":
            return sample_segment_indices(n, cfg.DATA.NUM_FRAMES, cfg.AUG.FRAME_INTERVAL,
                                          generator)
        if sampling == "dense":
            return sample_dense_indices(n, cfg.DATA.NUM_FRAMES, cfg.DATA.FRAME_INTERVAL,
                                        generator)
        raise ValueError(f"unknown sampling {sampling!r}: use one of {SAMPLINGS}")
    return index_fn


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def profile_video(path: str, sampling: str, cfg, num_iters: int, decoders=DECODERS,
                  baseline=None) -> dict:
    """Median wall / CPU ms per clip of every variant on one video, interleaved clip by clip:
    ``decode_<decoder>`` for each decoder, ``augment`` (of the PyAV frames, or the first
    decoder's without PyAV), and with ``baseline`` ``decode_pyav_baseline``, ``augment_baseline``.
    """
    from datasets.decoding import load_frames
    from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform
    from datasets.video_dataset import item_generator
    variants = {f"decode_{d}": (load_frames, d) for d in decoders}
    augmenters = {"augment": train_transform}
    if baseline is not None:
        variants["decode_pyav_baseline"] = (baseline.decoding.load_frames, "pyav")
        augmenters["augment_baseline"] = baseline.transforms.train_transform
    source = "decode_pyav" if "pyav" in decoders else f"decode_{decoders[0]}"
    variants.update({name: None for name in augmenters})
    names = list(variants)
    times = {name: {"wall": [], "cpu": []} for name in names}

    def decode(name, index, seen=None):
        loader, decoder = variants[name]
        index_fn = _index_fn(sampling, cfg, item_generator(0, 0, index), seen)
        return torch.from_numpy(loader(path, index_fn, decoder))

    def augment(name, index, frames, n):
        generator = item_generator(0, 0, index)
        _index_fn(sampling, cfg, generator)(n)  # the item draws its frames first, then augments
        return augmenters[name](frames, cfg, generator, IMAGENET_MEAN, IMAGENET_STD)

    for step in range(-1, num_iters):  # step -1: warm-up (imports, file cache), not recorded
        index = step + 1000 if step < 0 else step
        shift = max(step, 0) % len(names)
        frames, seen = None, {}
        for name in names[shift:] + names[:shift]:
            if name in augmenters:
                if frames is None:
                    frames = decode(source, index, seen)
                _, wall, cpu = _timed(lambda: augment(name, index, frames, seen["n"]))
            elif name == source:
                frames, wall, cpu = _timed(lambda: decode(name, index, seen))
            else:
                _, wall, cpu = _timed(lambda: decode(name, index))
            if step >= 0:
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
    return {name: {clock: round(statistics.median(values), 2) for clock, values in t.items()}
            for name, t in times.items()}


def ratios(medians: dict, clock: str) -> dict:
    """Ratios of ``profile_video``'s medians for one clock ("wall" or "cpu")."""
    m = {name: values[clock] for name, values in medians.items()}
    out = {}
    decoders = [name[len("decode_"):] for name in m
                if name.startswith("decode_") and not name.endswith("_baseline")]
    for d in decoders:
        out[f"{d}_clips_per_s"] = 1e3 / (m[f"decode_{d}"] + m["augment"])
    if "decode_pyav" in m:
        out["augment_over_pyav_decode"] = m["augment"] / m["decode_pyav"]
        if "decode_decord" in m:
            out["decord_over_pyav_decode"] = m["decode_decord"] / m["decode_pyav"]
            out["decord_over_pyav_pipeline"] = ((m["decode_decord"] + m["augment"])
                                                / (m["decode_pyav"] + m["augment"]))
    if "augment_baseline" in m:
        out["augment_speedup_vs_baseline"] = m["augment_baseline"] / m["augment"]
        out["baseline_augment_over_pyav_decode"] = m["augment_baseline"] / m["decode_pyav_baseline"]
        if "decode_pyav" in m:
            out["pyav_decode_speedup_vs_baseline"] = m["decode_pyav_baseline"] / m["decode_pyav"]
            out["pipeline_speedup_vs_baseline"] = (
                (m["decode_pyav_baseline"] + m["augment_baseline"])
                / (m["decode_pyav"] + m["augment"]))
    return {k: round(v, 3) for k, v in out.items()}


def profile_ops(path: str, sampling: str, cfg, num_iters: int, baseline=None,
                top: int = 12) -> dict:
    """Self CPU ms per clip of the augmentation's operators (torch.profiler), current code and
    ``baseline``, on PyAV-decoded clips of ``path``."""
    from torch.profiler import ProfilerActivity, profile

    from datasets.decoding import load_frames
    from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform
    from datasets.video_dataset import item_generator
    variants = {"augment": train_transform}
    if baseline is not None:
        variants["augment_baseline"] = baseline.transforms.train_transform
    seen = {}
    clips = [torch.from_numpy(load_frames(path, _index_fn(sampling, cfg, item_generator(0, 0, i),
                                                          seen), "pyav"))
             for i in range(num_iters)]
    out = {}
    for name, transform in variants.items():
        def run():
            for i, frames in enumerate(clips):
                generator = item_generator(0, 0, i)
                _index_fn(sampling, cfg, generator)(seen["n"])
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


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------
def _machine_line(info: dict) -> str:
    return (f"machine: nproc {info['nproc']}, {info['cpu_model']}, load average "
            f"{' '.join(map(str, info['load_average']))}; python {info['python']}, torch "
            f"{info['torch']}, av {info['av']}, decord {info['decord']}; 1 intra-op thread")


def run_loader_benchmark(args=None) -> dict:
    """Run the harness (see the module docstring); writes ``args.output`` if set. Returns
    ``{"machine", "num_iters", "baseline", "decoders", "cells": {"VIDEO/SAMPLING": {"ms",
    "wall", "cpu"}}}`` (``"ops"`` instead of cells with ``args.profile``, the number of
    operators listed). ``args.repeats``: clips per video and sampling (default 30)."""
    num_iters = int(getattr(args, "repeats", None) or 30)
    decoders = tuple(getattr(args, "decoders", None) or DECODERS)
    samplings = tuple(getattr(args, "samplings", None) or SAMPLINGS)
    videos = tuple(getattr(args, "videos", None) or RESOLUTIONS)
    revision = getattr(args, "baseline", None) or ""
    top_ops = int(getattr(args, "profile", 0) or 0)
    seconds = float(getattr(args, "seconds", None) or VIDEO_SECONDS)
    output = getattr(args, "output", None) or ""
    cfg = getattr(args, "cfg", None) or benchmark_settings()
    sizes = {video: video_size(video) for video in videos}
    for decoder in decoders:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}: use one of {DECODERS}")
    if revision and "pyav" not in decoders:
        raise ValueError("--baseline compares PyAV decoding: keep pyav among the decoders")
    results = {"machine": machine_info(), "num_iters": num_iters, "baseline": revision,
               "decoders": list(decoders)}
    print(_machine_line(results["machine"]), flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs with one intra-op thread
    try:
        with tempfile.TemporaryDirectory() as tmp:
            baseline = (baseline_package(revision, os.path.join(tmp, "baseline"))
                        if revision else None)
            if top_ops:
                path = os.path.join(tmp, f"{videos[0]}.mp4")
                make_benchmark_video(path, *sizes[videos[0]], seconds=seconds)
                results["ops"] = profile_ops(path, samplings[0], cfg, num_iters, baseline,
                                             top_ops)
            else:
                results["cells"] = {}
            for video in ([] if top_ops else videos):
                path = os.path.join(tmp, f"{video}.mp4")
                make_benchmark_video(path, *sizes[video], seconds=seconds)
                for sampling in samplings:
                    medians = profile_video(path, sampling, cfg, num_iters, decoders, baseline)
                    cell = {"ms": medians, "wall": ratios(medians, "wall"),
                            "cpu": ratios(medians, "cpu")}
                    results["cells"][f"{video}/{sampling}"] = cell
                    print(f"{video} {sampling}: " + ", ".join(
                        f"{name} {v['wall']:.1f} ms (cpu {v['cpu']:.1f})"
                        for name, v in medians.items()), flush=True)
                    print("    wall " + json.dumps(cell["wall"]) + "\n    cpu  "
                          + json.dumps(cell["cpu"]), flush=True)
    finally:
        torch.set_num_threads(threads)
    results["machine"]["load_average_after"] = machine_info()["load_average"]
    print(f"load average after: {' '.join(map(str, results['machine']['load_average_after']))}")
    if output:
        atomic_write_text(output, json.dumps(results, indent=1) + "\n")
    return results
