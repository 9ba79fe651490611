"""Decode only the frames a clip needs: decord, PyAV or folders of JPEG frames.

Every decoder returns uint8 RGB frames as a numpy array (K, H, W, 3) in the order of the requested
indices (repeats allowed). decord and PyAV give identical pixels for the same indices on H.264
(both use FFmpeg's yuv420p -> rgb24 conversion; checked by tests on real clips).

Frame ``i`` is the i-th frame in presentation order. PyAV builds that table by demuxing packets
(no decoding), then for each run of needed frames that no keyframe separates seeks to the keyframe
before it and decodes forward only up to its last frame, skipping non-reference frames nobody
asked for and draining the decoder as soon as the last wanted packet is in. decord's
``get_batch`` cannot do any of this, so PyAV is the faster decoder (docs/benchmarks.md).
"""
from __future__ import annotations

import glob
import os
import threading
from typing import Callable

import numpy as np

__all__ = ["VideoDecodeError", "DECODERS", "load_frames", "count_frames", "frame_rate",
           "FRAME_EXTENSIONS"]

DECODERS = ("decord", "pyav", "frames")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")

# Called with the frame count, returns the indices to decode.
IndexFn = Callable[[int], np.ndarray]


class VideoDecodeError(RuntimeError):
    """A video that cannot be read: missing, empty, corrupt or truncated. Message has the reason."""


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: file not found")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")


# ------------------------------------------------------------------------------------------------
# decord
# ------------------------------------------------------------------------------------------------
def _decord_load(path: str, index_fn: IndexFn) -> np.ndarray:
    import decord
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError / RuntimeError
        raise _OpenError(f"decord cannot open it ({str(err).splitlines()[0][:200]})") from err
    n = len(reader)
    if n <= 0:
        raise VideoDecodeError(f"{path}: no video frames")
    indices = np.asarray(index_fn(n), dtype=np.int64)
    unique, inverse = np.unique(indices, return_inverse=True)
    try:
        frames = reader.get_batch(unique.tolist()).asnumpy()
    except Exception as err:
        raise VideoDecodeError(f"{path}: decord failed reading frames "
                               f"({str(err).splitlines()[0][:200]})") from err
    return frames[inverse]


class _OpenError(VideoDecodeError):
    """decord could not open the container (PyAV gets a try)."""


# ------------------------------------------------------------------------------------------------
# PyAV
# ------------------------------------------------------------------------------------------------
def _pyav_frame_table(container, stream) -> tuple[np.ndarray, np.ndarray]:
    """Presentation timestamps of every frame, sorted (one per video packet with data), and the
    sorted positions of the keyframes among them."""
    pts, key_pts = [], []
    for packet in container.demux(stream):
        if packet.size > 0 and packet.pts is not None:
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
    table = np.sort(np.asarray(pts, dtype=np.int64))
    return table, np.unique(np.searchsorted(table, np.asarray(key_pts, dtype=np.int64)))


def _seek_groups(positions: list[int], keyframes: np.ndarray) -> list[list[int]]:
    """Split sorted frame positions into runs decoded after one seek each: a new run starts where
    a keyframe lies between two wanted frames, so decoding jumps to it instead of going through
    every frame in between (with a keyframe every 2 s, segment sampling decodes a quarter less)."""
    groups = [[positions[0]]]
    for previous, position in zip(positions, positions[1:]):
        k = np.searchsorted(keyframes, position, side="right") - 1
        if k >= 0 and keyframes[k] > previous + 1:
            groups.append([position])
        else:
            groups[-1].append(position)
    return groups


def _pyav_decode_range(container, stream, table, pts_to_index, needed, seek_position, last,
                       skip_unneeded: bool = True) -> dict:
    """Decode forward (after seeking to the keyframe at or before frame ``seek_position``) up to
    frame ``last``; ``table`` holds the frames' timestamps and ``pts_to_index`` is its inverse.

    With ``skip_unneeded`` a frame that is neither requested nor referenced by another frame
    (a non-reference B-frame) is not decoded at all: FFmpeg's skip_frame NONREF is switched on
    packet by packet for every packet whose timestamp is not one we need. Segment sampling over a
    whole video decodes nearly every frame, so this saves a third of the decoding time on x264
    files with B-frames. Once the packet of every requested frame has gone into the decoder, the
    decoder is drained instead of fed: with B-frames it holds frames back until later packets
    arrive, and those later frames would be decoded for nothing. Frames are then placed by their
    timestamps only."""
    import av
    container.seek(int(table[seek_position]), stream=stream, backward=True, any_frame=False)
    codec = stream.codec_context
    needed_pts = {int(table[i]) for i in needed}
    unsent = set(needed_pts)  # requested frames whose packet the decoder has not had yet
    got: dict[int, np.ndarray] = {}
    position = None
    try:
        for packet in container.demux(stream):
            if skip_unneeded:
                codec.skip_frame = ("DEFAULT" if packet.pts is None or packet.pts in needed_pts
                                    else "NONREF")
            frames = codec.decode(packet)
            drain = skip_unneeded and packet.pts is not None and packet.pts in unsent
            if drain:
                unsent.discard(packet.pts)
                drain = not unsent
                if drain:
                    frames = frames + codec.decode(None)
            for frame in frames:
                if frame.pts is not None and int(frame.pts) in pts_to_index:
                    position = pts_to_index[int(frame.pts)]
                elif position is not None and not skip_unneeded:  # no usable timestamp: count on
                    position += 1
                else:
                    continue
                if position > last:
                    return got
                if position in needed:
                    got[position] = _to_rgb(frame)
                    if len(got) == len(needed):
                        return got
            if drain:
                return got
    except av.error.FFmpegError:
        pass  # truncated/corrupt data: the caller reports the frames that are missing
    finally:
        codec.skip_frame = "DEFAULT"
    return got


def _to_rgb(frame) -> np.ndarray:
    """rgb24 (H, W, 3) through one swscale context kept per thread, converting on that one
    thread: ``frame.to_ndarray(format="rgb24")`` sets up a new context for every frame and lets
    swscale spread the work over every core, which a loader worker (one of one per core) must
    not do. Same pixels (the conversion is the same FFmpeg code)."""
    reformatter = getattr(_PER_THREAD, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter
        reformatter = _PER_THREAD.reformatter = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


_PER_THREAD = threading.local()


def _pyav_load(path: str, index_fn: IndexFn) -> np.ndarray:
    import av
    try:
        container = av.open(path)
    except Exception as err:
        raise VideoDecodeError(f"{path}: PyAV cannot open it ({err})") from err
    try:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        try:
            table, keyframes = _pyav_frame_table(container, stream)
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: corrupt container ({err})") from err
        n = len(table)
        if n == 0:
            raise VideoDecodeError(f"{path}: no video frames")
        indices = np.asarray(index_fn(n), dtype=np.int64)
        needed = set(np.unique(indices).tolist())
        pts_to_index = {int(p): i for i, p in enumerate(table)}
        last = max(needed)
        got: dict[int, np.ndarray] = {}
        for group in _seek_groups(sorted(needed), keyframes):
            got.update(_pyav_decode_range(container, stream, table, pts_to_index, set(group),
                                          group[0], group[-1]))
        if len(got) < len(needed):  # a seek missed: decode from the start
            got = _pyav_decode_range(container, stream, table, pts_to_index, needed, 0, last)
        if len(got) < len(needed):  # frames without timestamps: decode every frame, count them
            got = _pyav_decode_range(container, stream, table, pts_to_index, needed, 0, last,
                                     skip_unneeded=False)
        if len(got) < len(needed):
            missing = sorted(needed - set(got))
            raise VideoDecodeError(f"{path}: truncated or corrupt, could not decode frames "
                                   f"{missing[:5]}{'...' if len(missing) > 5 else ''} of {n}")
    finally:
        container.close()
    return np.stack([got[int(i)] for i in indices])


# ------------------------------------------------------------------------------------------------
# Frame folders
# ------------------------------------------------------------------------------------------------
def list_frame_files(directory: str) -> list[str]:
    files = []
    for ext in FRAME_EXTENSIONS:
        files.extend(glob.glob(os.path.join(glob.escape(directory), "*" + ext)))
    return sorted(files)


def _frames_load(path: str, index_fn: IndexFn) -> np.ndarray:
    from PIL import Image
    if not os.path.isdir(path):
        raise VideoDecodeError(f"{path}: not a directory of frames (DATA.DECODER frames expects "
                               f"one folder of JPEGs per video)")
    files = list_frame_files(path)
    if not files:
        raise VideoDecodeError(f"{path}: no .jpg/.png frames in the folder")
    indices = np.asarray(index_fn(len(files)), dtype=np.int64)
    cache: dict[int, np.ndarray] = {}
    for i in np.unique(indices).tolist():
        try:
            with Image.open(files[i]) as img:
                cache[i] = np.asarray(img.convert("RGB"))
        except Exception as err:
            raise VideoDecodeError(f"{files[i]}: unreadable frame ({err})") from err
    return np.stack([cache[int(i)] for i in indices])


# ------------------------------------------------------------------------------------------------
def load_frames(path: str, index_fn: IndexFn, decoder: str = "decord") -> np.ndarray:
    """uint8 (K, H, W, 3) RGB frames at ``index_fn(num_frames)``.

    ``decoder`` decord falls back to PyAV when decord cannot open or read the file. Any failure
    raises VideoDecodeError naming the file and the reason.
    """
    if decoder == "frames":
        return _frames_load(path, index_fn)
    _check_file(path)
    if decoder == "pyav":
        return _pyav_load(path, index_fn)
    if decoder != "decord":
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    try:
        return _decord_load(path, index_fn)
    except VideoDecodeError as decord_err:
        try:
            return _pyav_load(path, index_fn)
        except VideoDecodeError as pyav_err:
            raise VideoDecodeError(f"{pyav_err}; decord: {str(decord_err).replace(path + ': ', '')}"
                                   ) from pyav_err


def count_frames(path: str, decoder: str = "decord") -> int:
    """Number of frames the decoder sees in ``path``."""
    counted = []

    def index_fn(n):
        counted.append(n)
        return np.zeros(1, dtype=np.int64)

    load_frames(path, index_fn, decoder)
    return counted[0]


def frame_rate(path: str) -> float:
    """Frames per second of a video file, from its container's metadata (nothing is decoded):
    the stream's average rate, else its guessed rate. VideoDecodeError when the file cannot be
    opened or states no rate."""
    import av
    _check_file(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: PyAV cannot open it ({err})") from err
    if not rate or float(rate) <= 0:
        raise VideoDecodeError(f"{path}: the container states no frame rate")
    return float(rate)
