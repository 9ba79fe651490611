"""Feature extraction to ``.npy``: every video once across processes, resumable, atomic.

Each process takes the videos ``rank::world`` of the input list and writes one part file per
video (``OUT/parts/<key>.npz``: the features of its windows and their frame spans), atomically;
a part that exists is not computed again, so an interrupted run continues where it stopped.
When every process is done, rank 0 assembles, in input order:

* ``OUT/features.npy``: float32 ``[N, D]`` (whole videos) or ``[N, W, D]`` with ``--window``
  (W = the most windows of any video; missing windows of shorter videos are NaN);
* ``OUT/index.csv``: ``row,window,video,start_s,end_s,start_frame,end_frame``, one line per
  feature vector (``row`` indexes the first axis of ``features.npy``; the times are empty for
  whole videos);
* ``OUT/manifest.json``: the settings the parts were made with. A re-run with other settings
  (config, checkpoint, windows) is refused instead of mixing features.

Features are the model's pre-logit features (``engine.inference.clip_features``) of each of
evaluation's ``TEST.NUM_CLIP x TEST.NUM_CROP`` views, averaged over the views.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from typing import Callable, Sequence

import numpy as np

from datasets import VideoDecodeError
from datasets.fileio import atomic_path, atomic_write_bytes, atomic_write_text, \
    remove_stale_temp_files
from engine import distributed as du
from engine.build import amp_dtype
from engine.config import ConfigError
from engine.inference import (collect_videos, decode_failure, feature_spans, load_trained_model,
                              video_spans, writable_folder)
from engine.logging import config_hash, setup_logging

logger = logging.getLogger(__name__)

__all__ = ["extract_features", "part_path", "assemble", "FEATURES_FILE", "INDEX_FILE",
           "MANIFEST_FILE"]

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


def part_path(out_dir: str, video: str) -> str:
    """The part file of one video (named by a hash of its absolute path)."""
    key = hashlib.sha1(os.path.abspath(video).encode("utf-8")).hexdigest()[:20]
    return os.path.join(out_dir, "parts", f"{key}.npz")


def _read_part(path: str) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in ("features", "spans", "fps", "video")}
    except (OSError, ValueError, KeyError):
        return None


def _write_part(path: str, video: str, features: np.ndarray, spans: np.ndarray,
                fps: float) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, features=features.astype(np.float32), spans=spans.astype(np.int64),
             fps=np.float64(fps), video=np.str_(video))
    atomic_write_bytes(path, buffer.getvalue())


def _manifest(cfg, checkpoint: str, window: float | None, stride: float | None) -> dict:
    return {"version": FORMAT_VERSION, "model": cfg.MODEL.TYPE,
            "checkpoint": os.path.abspath(checkpoint), "config_hash": config_hash(cfg),
            "window": window, "stride": (stride or window) if window else None,
            "views": {"num_clip": cfg.TEST.NUM_CLIP, "num_crop": cfg.TEST.NUM_CROP}}


def _check_manifest(out_dir: str, wanted: dict) -> None:
    path = os.path.join(out_dir, MANIFEST_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
        if found != wanted:
            differ = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise ConfigError(f"--out {out_dir} holds features made with other settings "
                              f"({', '.join(differ)} differ); choose another --out, or delete "
                              f"{out_dir} to start again")
    else:
        atomic_write_text(path, json.dumps(wanted, indent=1) + "\n")


def assemble(out_dir: str, videos: Sequence[str], windowed: bool) -> tuple[int, tuple]:
    """Write features.npy and index.csv from the part files of ``videos`` (in this order;
    videos without a part are left out). Returns (videos written, array shape)."""
    parts = [(v, _read_part(part_path(out_dir, v))) for v in videos]
    parts = [(v, p) for v, p in parts if p is not None]
    dim = parts[0][1]["features"].shape[1] if parts else 0
    if windowed:
        most = max((p["features"].shape[0] for _, p in parts), default=0)
        array = np.full((len(parts), most, dim), np.nan, dtype=np.float32)
        for row, (_, p) in enumerate(parts):
            array[row, :p["features"].shape[0]] = p["features"]
    else:
        array = np.stack([p["features"][0] for _, p in parts]) if parts else \
            np.zeros((0, dim), dtype=np.float32)
    with atomic_path(os.path.join(out_dir, FEATURES_FILE)) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array.astype(np.float32), allow_pickle=False)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["row", "window", "video", "start_s", "end_s", "start_frame", "end_frame"])
    for row, (video, p) in enumerate(parts):
        fps = float(p["fps"])
        for window, (start, stop) in enumerate(p["spans"].tolist()):
            times = [f"{start / fps:.3f}", f"{stop / fps:.3f}"] if windowed else ["", ""]
            frames = [start, stop] if windowed else ["", ""]
            writer.writerow([row, window, video, *times, *frames])
    atomic_write_text(os.path.join(out_dir, INDEX_FILE), text.getvalue())
    return len(parts), tuple(array.shape)


def extract_features(cfg, checkpoint: str, inputs: Sequence[str], out_dir: str,
                     window: float | None = None, stride: float | None = None,
                     log: Callable[[str], None] = print) -> int:
    """Run the extraction on this process's share; rank 0 assembles. Returns 0, or 1 when a
    video could not be decoded (it is reported, left out, and tried again by a re-run)."""
    from tqdm import tqdm
    videos = collect_videos(inputs, what="--input")
    dist_info = du.init_distributed(cfg)
    out_dir = writable_folder(out_dir, "--out")
    setup_logging(out_dir, dist_info.rank)
    problem = None
    if dist_info.is_main:  # every rank learns the outcome: none waits for a rank that stopped
        os.makedirs(os.path.join(out_dir, "parts"), exist_ok=True)
        remove_stale_temp_files(os.path.join(out_dir, "parts"))  # left by a killed run
        try:
            _check_manifest(out_dir, _manifest(cfg, checkpoint, window, stride))
        except ConfigError as err:
            problem = str(err)
    problem = du.broadcast_object(problem)
    if problem:
        raise ConfigError(problem)
    mine = videos[dist_info.rank::dist_info.world_size]
    todo = [v for v in mine if _read_part(part_path(out_dir, v)) is None]
    done = du.all_gather_objects(len(mine) - len(todo))
    if dist_info.is_main:
        log(f"{len(videos)} videos, {sum(done)} done earlier; extracting {len(videos) - sum(done)}"
            f" over {dist_info.world_size} process(es) into {out_dir}")
    failed = []
    if todo:
        model = load_trained_model(cfg, checkpoint, dist_info.device)
        amp = amp_dtype(cfg)
        for video in tqdm(todo, unit="video", desc="features", disable=None if
                          dist_info.is_main else True):
            try:
                spans, count, fps = video_spans(cfg, video, window, stride)
                features = feature_spans(model, cfg, video, spans, dist_info.device, amp)
            except VideoDecodeError as err:
                failed.append(decode_failure(video, err))
                logger.warning("skipped %s", failed[-1])
                continue
            spans = np.asarray(spans if spans is not None else [(0, 0)], dtype=np.int64)
            _write_part(part_path(out_dir, video), video, features.numpy(), spans, fps or 0.0)
    failed = [f for part in du.all_gather_objects(failed) for f in part]
    du.barrier()
    if dist_info.is_main:
        written, shape = assemble(out_dir, videos, windowed=bool(window))
        log(f"features: {os.path.join(out_dir, FEATURES_FILE)} {list(shape)} float32 "
            f"({written} video{'' if written == 1 else 's'})")
        log(f"index:    {os.path.join(out_dir, INDEX_FILE)}")
        for line in failed:
            log(f"could not be decoded (left out; a re-run tries again): {line}")
    return 1 if failed else 0
