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
* ``OUT/manifest.json``: the settings the parts were made with, written once the model has
  loaded (a failed run leaves none). A re-run with other settings (config without OUTPUT, the
  checkpoint's content: size, mtime, a hash of its first and last MiB; windows) is refused
  instead of mixing features; a part made from another version of its video (size, mtime) is
  computed again.

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
from common.fileio import atomic_path, atomic_write_bytes, atomic_write_text, \
    remove_stale_temp_files
from engine import distributed as du
from engine.build import amp_dtype
from engine.config import ConfigError
from engine.guards import non_finite_rows, non_finite_videos_error, refuse_overwriting_inputs
from engine.inference import feature_spans, video_spans
from engine.logging import config_hash, setup_logging
from tools._inputs import collect_videos, decode_failure, writable_folder

logger = logging.getLogger(__name__)

__all__ = ["extract_features", "part_path", "assemble", "FEATURES_FILE", "INDEX_FILE",
           "MANIFEST_FILE"]

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 2  # 2: parts carry the video's size and mtime, the manifest the checkpoint's


def part_path(out_dir: str, video: str) -> str:
    """The part file of one video (named by a hash of its absolute path)."""
    key = hashlib.sha1(os.path.abspath(video).encode("utf-8")).hexdigest()[:20]
    return os.path.join(out_dir, "parts", f"{key}.npz")


def video_stamp(video: str) -> str:
    """What identifies a video's content cheaply: its size and modification time. A part made
    from another version of the file is not reused."""
    try:
        info = os.stat(video)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


def _read_part(path: str, video: str | None = None) -> dict | None:
    """A part file's arrays; None when it is missing, damaged, or (given ``video``) made from
    another version of the video."""
    try:
        with np.load(path, allow_pickle=False) as data:
            part = {k: data[k] for k in ("features", "spans", "fps", "video", "stamp")}
    except (OSError, ValueError, KeyError):
        return None
    if video is not None and str(part["stamp"]) != video_stamp(video):
        return None
    return part


def _write_part(path: str, video: str, features: np.ndarray, spans: np.ndarray,
                fps: float) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, features=features.astype(np.float32), spans=spans.astype(np.int64),
             fps=np.float64(fps), video=np.str_(video), stamp=np.str_(video_stamp(video)))
    atomic_write_bytes(path, buffer.getvalue())


def checkpoint_identity(checkpoint: str) -> dict:
    """The checkpoint's content, cheaply: size, modification time and the sha256 of its first
    and last MiB. A checkpoint replaced under the same path (runs/x/latest.pth after more
    training) is another identity; the same file under another spelling of its path is not."""
    info = os.stat(checkpoint)
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        digest.update(f.read(1 << 20))
        if info.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            digest.update(f.read(1 << 20))
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256_head_tail":
            digest.hexdigest()}


def _config_identity(cfg) -> str:
    """config_hash of the config without OUTPUT: where the features go does not change them
    (``--out x``, ``--out x/`` and ``--out /abs/x`` are one run)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT = ""
    return config_hash(cfg)


def _manifest(cfg, checkpoint: str, window: float | None, stride: float | None) -> dict:
    return {"version": FORMAT_VERSION, "model": cfg.MODEL.TYPE,
            "checkpoint": checkpoint_identity(checkpoint), "config_hash": _config_identity(cfg),
            "window": window, "stride": (stride or window) if window else None,
            "views": {"num_clip": cfg.TEST.NUM_CLIP, "num_crop": cfg.TEST.NUM_CROP}}


def _check_manifest(out_dir: str, wanted: dict) -> bool:
    """Refuse an ``out_dir`` whose features were made with other settings; True when it has
    no manifest yet (written once the model has loaded: a failed run leaves none)."""
    path = os.path.join(out_dir, MANIFEST_FILE)
    if not os.path.isfile(path):
        return True
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable manifest ({err}); delete {out_dir} to start "
                          f"again, or choose another --out") from None
    if found != wanted:
        differ = sorted(k for k in set(found) | set(wanted)
                        if not isinstance(found, dict) or found.get(k) != wanted.get(k))
        raise ConfigError(f"--out {out_dir} holds features made with other settings "
                          f"({', '.join(differ)} differ); choose another --out, or delete "
                          f"{out_dir} to start again")
    return False


def _write_manifest(out_dir: str, manifest: dict) -> None:
    atomic_write_text(os.path.join(out_dir, MANIFEST_FILE), json.dumps(manifest, indent=1) + "\n")


def assemble(out_dir: str, videos: Sequence[str], windowed: bool) -> tuple[int, tuple]:
    """Write features.npy and index.csv from the part files of ``videos`` (in this order;
    videos without a part are left out). Returns (videos written, array shape)."""
    parts = [(v, _read_part(part_path(out_dir, v), v)) for v in videos]
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
                     log: Callable[[str], None] = print, runtime: str | None = None) -> int:
    """Run the extraction on this process's share; rank 0 assembles. Returns 0, or 1 when a
    video could not be decoded (it is reported, left out, and tried again by a re-run).
    ``runtime``: what runs the model (engine.runtime.load_inference_model)."""
    from engine.runtime import load_inference_model
    from tqdm import tqdm
    videos = collect_videos(inputs, what="--input")
    refuse_overwriting_inputs(out_dir, "--out", [("the input video", v) for v in videos]
                              + [("--checkpoint", checkpoint)]
                              + [("the input", i) for i in inputs if not os.path.isdir(i)])
    dist_info = du.init_distributed(cfg)
    out_dir = os.path.normpath(writable_folder(out_dir, "--out"))
    setup_logging(out_dir, dist_info.rank)
    manifest = _manifest(cfg, checkpoint, window, stride)
    problem, new_manifest = None, False
    if dist_info.is_main:  # every rank learns the outcome: none waits for a rank that stopped
        os.makedirs(os.path.join(out_dir, "parts"), exist_ok=True)
        remove_stale_temp_files(os.path.join(out_dir, "parts"))  # left by a killed run
        try:
            new_manifest = _check_manifest(out_dir, manifest)
        except ConfigError as err:
            problem = str(err)
    problem, new_manifest = du.broadcast_object((problem, new_manifest))
    if problem:
        raise ConfigError(problem)
    mine = videos[dist_info.rank::dist_info.world_size]
    todo = [v for v in mine if new_manifest or _read_part(part_path(out_dir, v), v) is None]
    done = du.all_gather_objects(len(mine) - len(todo))
    if dist_info.is_main:
        log(f"{len(videos)} videos, {sum(done)} done earlier; extracting {len(videos) - sum(done)}"
            f" over {dist_info.world_size} process(es) into {out_dir}")
    failed, non_finite = [], []
    if todo:
        model = load_inference_model(cfg, checkpoint, runtime, dist_info.device)
    if dist_info.is_main and new_manifest:  # the model loaded: from now on parts are valid
        _write_manifest(out_dir, manifest)
    if todo:
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
            broken = non_finite_rows(features)
            if broken.any():  # never written: a part is a finished, trustworthy result
                non_finite.append((video, int(broken.sum()), len(broken)))
                continue
            spans = np.asarray(spans if spans is not None else [(0, 0)], dtype=np.int64)
            _write_part(part_path(out_dir, video), video, features.numpy(), spans, fps or 0.0)
    failed = [f for part in du.all_gather_objects(failed) for f in part]
    non_finite = [n for part in du.all_gather_objects(non_finite) for n in part]
    du.barrier()
    if non_finite:
        raise non_finite_videos_error(non_finite, len(videos), "features", checkpoint,
                                      f"{FEATURES_FILE} was not written")
    if dist_info.is_main:
        written, shape = assemble(out_dir, videos, windowed=bool(window))
        log(f"features: {os.path.join(out_dir, FEATURES_FILE)} {list(shape)} float32 "
            f"({written} video{'' if written == 1 else 's'})")
        log(f"index:    {os.path.join(out_dir, INDEX_FILE)}")
        for line in failed:
            log(f"could not be decoded (left out; a re-run tries again): {line}")
    return 1 if failed else 0
