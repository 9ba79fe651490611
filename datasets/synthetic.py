"""A synthetic motion benchmark that only a model that uses frame order can solve.

Ten classes in five time-reversed pairs: moving left/right, moving up/down, growing/shrinking,
rotating clockwise/anticlockwise, appearing/disappearing. A clip of the second class of a pair is a
clip of the first class played backwards, drawn from the same random parameters (shape, colours,
texture, size, speed, background), so both classes have the same distribution of single frames and
a model that ignores frame order can at best recognise the pair and guess within it (50% top-1
over the ten classes).

The set is written as real H.264 mp4 files (PyAV, libx264 ultrafast, crf 18, yuv420p, keyframe
every 8 frames) with ``train.csv``/``val.csv`` list files (``path,label``), ``classes.txt`` and a
``.complete.json`` marker written last. It is a pure function of its settings and seed.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from multiprocessing import get_context

import numpy as np

from common.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["CLASS_NAMES", "draw_params", "render_clip", "encode_mp4", "generate_synthetic",
           "ensure_synthetic", "synthetic_settings", "MARKER", "GENERATOR_VERSION"]

logger = logging.getLogger(__name__)

CLASS_NAMES = ("moving left", "moving right", "moving up", "moving down", "growing", "shrinking",
               "rotating clockwise", "rotating anticlockwise", "appearing", "disappearing")
MARKER = ".complete.json"
_SHAPES = ("square", "circle", "triangle", "diamond", "cross", "ell")
_ASYMMETRIC = ("triangle", "ell", "cross")  # rotation must be visible
_FPS = 25
_GOP = 8


# ------------------------------------------------------------------------------------------------
# Drawing
# ------------------------------------------------------------------------------------------------
# Objects are always bright and backgrounds always dark (each with a random hue, texture and
# pattern). Measured with the demo's tiny model (1800 clips, 8 epochs): with independent random
# colours for object and background it stayed at chance, because it first has to learn edges of
# either polarity in any colour; with this fixed polarity it reached 100% (in-memory frames).
_DARK, _BRIGHT = (0.0, 90.0), (165.0, 255.0)


def _dark(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(*_DARK, 3)


def _bright(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(*_BRIGHT, 3)


def draw_params(rng: np.random.Generator, pair: int, size: int) -> dict:
    """Random appearance and motion of one clip of pair ``pair`` (0..4); shared by both classes.

    Sizes and speeds are drawn wide enough to vary but large enough that one sampled frame moves
    an edge by about one stem patch (4 px at 64 px): rotation in particular (1-1.5 half-turns of
    a large asymmetric shape) stayed at chance within its pair when slower (0.5-1 half-turn)."""
    params = dict(
        pair=pair,
        bg_kind=["solid", "gradient", "noise", "stripes"][rng.integers(4)], bg1=_dark(rng),
        bg2=_dark(rng), bg_angle=rng.uniform(0, np.pi), bg_freq=rng.uniform(0.1, 0.5),
        bg_seed=int(rng.integers(2 ** 31)),
        shape=str(rng.choice(_ASYMMETRIC if pair == 3 else _SHAPES)),
        fg1=_bright(rng), fg2=_bright(rng), texture=["solid", "stripes", "checker"][
            rng.integers(3)], tex_freq=rng.uniform(2.0, 5.0),
        radius=rng.uniform(0.18, 0.25) * size, angle=rng.uniform(0, 2 * np.pi),
        cx=rng.uniform(0.3, 0.7) * size, cy=rng.uniform(0.3, 0.7) * size, alpha=(1.0, 1.0),
    )
    r = params["radius"]
    if pair in (0, 1):  # travel d pixels towards -x (left) or -y (up), staying inside the frame
        d = rng.uniform(0.4, 0.5) * size
        start = rng.uniform(min(r + d, size - r), size - r)
        key = "cx" if pair == 0 else "cy"
        params[key] = (start, start - d)
    elif pair == 2:  # growing
        r0 = rng.uniform(0.08, 0.12) * size
        params["radius"] = (r0, r0 * rng.uniform(2.0, 3.0))
    elif pair == 3:  # clockwise on screen (y points down) = increasing angle
        a0 = params["angle"]
        params["angle"] = (a0, a0 + rng.uniform(1.0, 1.5) * np.pi)
        params["radius"] = rng.uniform(0.25, 0.3) * size
    else:  # appearing: fade in
        params["alpha"] = (rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0))
    return params


def _track(value, t: np.ndarray) -> np.ndarray:
    """Per-frame value: constant, or linear from value[0] to value[1] over t in [0, 1]."""
    if isinstance(value, tuple):
        return value[0] + (value[1] - value[0]) * t
    return np.full_like(t, value)


def _background(p: dict, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    if p["bg_kind"] == "solid":
        w = np.zeros((size, size))
    elif p["bg_kind"] == "gradient":
        w = (np.cos(p["bg_angle"]) * xx + np.sin(p["bg_angle"]) * yy) / (1.5 * size) + 0.5
    elif p["bg_kind"] == "stripes":
        w = (np.sin((np.cos(p["bg_angle"]) * xx + np.sin(p["bg_angle"]) * yy) * p["bg_freq"])
             > 0).astype(np.float64) * 0.5
    else:
        noise = np.random.default_rng(p["bg_seed"]).uniform(0, 1, (size // 4 + 1, size // 4 + 1))
        w = np.kron(noise, np.ones((4, 4)))[:size, :size]
    w = np.clip(w, 0, 1)[..., None]
    return p["bg1"] * (1 - w) + p["bg2"] * w


def _mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    if shape == "square":
        return np.maximum(au, av) <= 0.8
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "triangle":
        return (v <= 0.8) & (au <= (v + 1.0) * 0.5)
    if shape == "diamond":
        return au + av <= 1.0
    if shape == "cross":  # uneven arms so that rotation is visible
        return ((au <= 0.3) & (v >= -1.0) & (v <= 0.5)) | ((av <= 0.3) & (au <= 1.0))
    return ((u >= -0.9) & (u <= -0.3) & (av <= 0.9)) | ((v >= 0.3) & (v <= 0.9) & (au <= 0.9))


def render_clip(params: dict, num_frames: int, size: int, reverse: bool = False) -> np.ndarray:
    """uint8 (num_frames, size, size, 3) frames; ``reverse`` plays the clip backwards."""
    t = np.linspace(0.0, 1.0, num_frames)
    cx, cy = _track(params["cx"], t), _track(params["cy"], t)
    radius, angle = _track(params["radius"], t), _track(params["angle"], t)
    alpha = _track(params["alpha"], t)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx = (xx[None] + 0.5 - cx[:, None, None]) / radius[:, None, None]
    dy = (yy[None] + 0.5 - cy[:, None, None]) / radius[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # object coordinates
    inside = _mask(params["shape"], u, v)
    if params["texture"] == "stripes":
        w = (np.sin(u * params["tex_freq"]) > 0)
    elif params["texture"] == "checker":
        w = (np.floor(u * params["tex_freq"] / 2) + np.floor(v * params["tex_freq"] / 2)) % 2 == 0
    else:
        w = np.zeros_like(u, dtype=bool)
    fg = np.where(w[..., None], params["fg2"], params["fg1"])
    a = (inside * alpha[:, None, None])[..., None]
    frames = _background(params, size)[None] * (1 - a) + fg * a
    frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return frames[::-1].copy() if reverse else frames


def encode_mp4(frames: np.ndarray, fps: int = _FPS) -> bytes:
    """H.264 mp4 bytes: libx264 ultrafast, crf 18, yuv420p, keyframe every 8 frames, 1 thread."""
    import av
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18", "threads": "1",
                          "x264-params": f"keyint={_GOP}:min-keyint={_GOP}:scenecut=0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# Writing a whole set
# ------------------------------------------------------------------------------------------------
def _clip_rng(seed: int, split_id: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, split_id, index]))


def _make_one(job) -> str:
    root, split, split_id, index, seed, num_frames, size = job
    label = index % len(CLASS_NAMES)
    params = draw_params(_clip_rng(seed, split_id, index), label // 2, size)
    frames = render_clip(params, num_frames, size, reverse=bool(label % 2))
    rel = os.path.join("videos", split, f"{index:06d}.mp4")
    atomic_write_bytes(os.path.join(root, rel), encode_mp4(frames))
    return f"{rel},{label}"


# Bumped whenever draw_params/render_clip change what a given seed produces (2: bright objects on
# dark backgrounds, larger and faster motion).
GENERATOR_VERSION = 2


def synthetic_settings(num_train: int, num_val: int, num_frames: int, size: int, seed: int) -> dict:
    """The settings a set is a function of; ValueError for numbers no set can be made with."""
    for name, value, low in (("num_train", num_train, 1), ("num_val", num_val, 1),
                             ("num_frames", num_frames, 1), ("size", size, 8)):
        if int(value) != value or value < low:
            raise ValueError(f"synthetic {name} must be a whole number >= {low}, got {value}")
    if size % 2:
        raise ValueError(f"synthetic size must be even for yuv420p, got {size}")
    return dict(num_train=int(num_train), num_val=int(num_val), num_frames=int(num_frames),
                size=int(size), seed=int(seed), version=GENERATOR_VERSION)


def generate_synthetic(root: str, num_train: int = 1800, num_val: int = 300, num_frames: int = 16,
                       size: int = 64, seed: int = 0, workers: int = 2, progress: bool = True
                       ) -> dict:
    """Write the set into ``root``; returns the settings recorded in the completion marker."""
    from tqdm import tqdm
    settings = synthetic_settings(num_train, num_val, num_frames, size, seed)
    jobs = []
    for split_id, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        os.makedirs(os.path.join(root, "videos", split), exist_ok=True)
        jobs += [(root, split, split_id, i, seed, num_frames, size) for i in range(count)]
    start = time.time()
    bar = tqdm(total=len(jobs), desc=f"synthetic -> {root}", unit="clip", disable=not progress)
    if workers > 1 and len(jobs) > 50:
        with get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
            lines = []
            for line in pool.imap(_make_one, jobs, chunksize=16):
                lines.append(line)
                bar.update()
    else:
        lines = []
        for job in jobs:
            lines.append(_make_one(job))
            bar.update()
    bar.close()
    files = {"train.csv": "\n".join(lines[:num_train]) + "\n",
             "val.csv": "\n".join(lines[num_train:]) + "\n",
             "classes.txt": "\n".join(CLASS_NAMES) + "\n",
             MARKER: json.dumps(settings, indent=1)}  # the marker last: the set is complete
    for name, text in files.items():
        atomic_write_text(os.path.join(root, name), text)
    logger.info("synthetic set: %d clips written to %s in %.1fs", len(jobs), root,
                time.time() - start)
    return settings


def _is_generating_process() -> bool:
    """The first process of each node generates (so node-local DATA.ROOT folders work); on a
    shared filesystem the lock file lets only one of them write while the others wait."""
    rank = 0
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank()
    except Exception:  # pragma: no cover - torch without distributed
        pass
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", rank))) == 0


def ensure_synthetic(root: str, settings: dict, timeout_s: float = 1800.0) -> None:
    """Generate the set into ``root`` unless a matching completion marker is there.

    Local rank 0 generates (guarded by an exclusive lock file so that two nodes or jobs sharing
    the folder do not write at once); every other process waits until the marker, written last,
    appears."""
    marker = os.path.join(root, MARKER)
    lock = os.path.join(root, ".generating.lock")

    def _check_existing() -> bool:
        if not os.path.isfile(marker):
            return False
        with open(marker, "r", encoding="utf-8") as f:
            found = json.load(f)
        if found == settings:
            return True
        if ({k: v for k, v in found.items() if k != "version"}
                == {k: v for k, v in settings.items() if k != "version"}):
            # same settings from an older generator: the set is a pure function of its settings,
            # so nothing is lost by writing it again (the new marker goes last, as always)
            logger.info("%s holds synthetic set version %s; writing version %s over it", root,
                        found.get("version"), settings["version"])
            return False
        raise RuntimeError(
            f"{root} holds a synthetic set made with {found}, but the config asks for "
            f"{settings}. Point DATA.ROOT at another folder or delete {root}.")

    if _check_existing():
        return
    os.makedirs(root, exist_ok=True)
    if _is_generating_process():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            fd = None  # another job is generating: wait below
        if fd is not None:
            try:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                if not _check_existing():
                    logger.info("generating the synthetic motion set into %s", root)
                    generate_synthetic(root, settings["num_train"], settings["num_val"],
                                       settings["num_frames"], settings["size"], settings["seed"])
            finally:
                os.remove(lock)
            return
    deadline = time.time() + timeout_s
    while not _check_existing():
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f}s for the synthetic set in {root} "
                               f"({marker} never appeared). If a generating job died, delete "
                               f"{lock} and run again.")
        time.sleep(1.0)
