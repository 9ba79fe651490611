"""Loader throughput: decoded + augmented clips per second in one worker process.

Generates two H.264 test videos with PyAV in a temporary folder (short side 340 at 604x340 and
1280x720; 10 s at 25 fps, x264 veryfast with B-frames, keyframe every 2 s), then times the
training item pipeline (segment sampling of 8 frames over the whole video as the reference, or a
dense clip of 8 frames 8 apart; decode, short-side resize, random resized crop to 224, flip,
colour jitter, grayscale, normalise) in the current process with one intra-op thread, for decord
and PyAV.

    python -m datasets.benchmark [--num-iters 20] [--json out.json]

``run_loader_benchmark(args)`` is what ``tools/benchmark.py --loader`` calls; ``args`` may lack any
attribute (defaults below). ``args.cfg`` may carry a full config tree; without it the pipeline
runs with ``benchmark_settings()``: the released configs' training augmentation.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch

from .fileio import atomic_write_text

__all__ = ["run_loader_benchmark", "make_benchmark_video", "benchmark_settings", "main"]

RESOLUTIONS = {"340p": (340, 604), "720p": (720, 1280)}


def make_benchmark_video(path: str, height: int, width: int, seconds: float = 10.0, fps: int = 25,
                         gop: int = 50) -> None:
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
    data = SimpleNamespace(NUM_FRAMES=8, INPUT_SIZE=224, FRAME_INTERVAL=8)
    aug = SimpleNamespace(SCALE=(0.08, 1.0), RATIO=(0.75, 1.3333333333333333), AUTO_AUGMENT="",
                          FLIP_RATIO=0.5, COLOR_JITTER=0.8, GRAY_SCALE=0.2, REPROB=0.0,
                          REMODE="pixel", RECOUNT=1, FRAME_INTERVAL=4)
    return SimpleNamespace(DATA=data, AUG=aug)


def _time_pipeline(path: str, decoder: str, cfg, num_iters: int, sampling: str) -> float:
    from .decoding import load_frames
    from .sampling import sample_dense_indices, sample_segment_indices
    from .transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform
    from .video_dataset import item_generator

    def one(i):
        gen = item_generator(0, 0, i)
        if sampling == "segment":
            index_fn = lambda n: sample_segment_indices(  # noqa: E731
                n, cfg.DATA.NUM_FRAMES, cfg.AUG.FRAME_INTERVAL, gen)
        else:
            index_fn = lambda n: sample_dense_indices(  # noqa: E731
                n, cfg.DATA.NUM_FRAMES, cfg.DATA.FRAME_INTERVAL, gen)
        frames = load_frames(path, index_fn, decoder)
        train_transform(torch.from_numpy(frames), cfg, gen, IMAGENET_MEAN, IMAGENET_STD)

    one(10 ** 6)  # warm-up (imports, file cache)
    start = time.perf_counter()
    for i in range(num_iters):
        one(i)
    return num_iters / (time.perf_counter() - start)


def run_loader_benchmark(args=None) -> dict:
    """Clips/s per worker for each resolution and decoder; writes ``args.json`` if set."""
    num_iters = int(getattr(args, "num_iters", None) or 20)
    decoders = getattr(args, "decoders", None) or ("decord", "pyav")
    samplings = getattr(args, "samplings", None) or ("segment", "dense")
    out_json = getattr(args, "json", None) or ""
    cfg = getattr(args, "cfg", None) or benchmark_settings()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs with one intra-op thread
    frames, size = cfg.DATA.NUM_FRAMES, cfg.DATA.INPUT_SIZE
    results = {"num_frames": frames, "input_size": size, "num_iters": num_iters,
               "clips_per_s": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (h, w) in RESOLUTIONS.items():
                path = os.path.join(tmp, f"{name}.mp4")
                make_benchmark_video(path, h, w)
                for sampling in samplings:
                    for decoder in decoders:
                        rate = _time_pipeline(path, decoder, cfg, num_iters, sampling)
                        results["clips_per_s"][f"{name}/{sampling}/{decoder}"] = round(rate, 2)
                        print(f"loader {name:>5} {sampling:>7} {decoder:>6}: {rate:6.2f} "
                              f"clips/s per worker ({frames} frames, {size} crop, train "
                              f"augmentation)")
    finally:
        torch.set_num_threads(threads)
    if out_json:
        atomic_write_text(out_json, json.dumps(results, indent=1))
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-iters", type=int, default=20, help="clips timed per setting")
    parser.add_argument("--json", default="", help="write the numbers to this file")
    parser.add_argument("--decoders", nargs="+", default=["decord", "pyav"])
    parser.add_argument("--samplings", nargs="+", default=["segment", "dense"])
    return run_loader_benchmark(parser.parse_args(argv))


if __name__ == "__main__":
    main()
