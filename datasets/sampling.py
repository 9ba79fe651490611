"""Which frame indices a clip is made of.

Two families, both returning int64 numpy arrays of frame indices into a video of ``n`` frames, each
the rule of the official code it comes from:

* segment (TSN) sampling, Video-FocalNets' ``SampleFrames`` (datasets/pipeline.py:1912-2034 of
  the official repository): the video is cut into ``num_frames`` segments and one frame is taken
  from each: a random offset in training, the segment centre for one test clip, and for
  multi-view testing one deterministic point inside the range the official random draw covers.
  Indices past the end loop back (modulo ``n``), as ``out_of_bound_opt='loop'``.
* dense sampling, Vita-CLIP's ``VideoDataset`` (video_dataset/dataset.py:113-128, 150-163):
  ``num_frames`` frames ``interval`` apart from one start: random in training, evenly spaced
  starts (Python's round, half to even) for multi-view testing. A training clip longer than the
  video repeats its last sampled frame; a test clip repeats the video's last frame.

Randomness always comes from the caller's ``torch.Generator`` so that an item's frames are a
function of (seed, epoch, index) only.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_segment_indices", "sample_dense_indices", "multi_view_indices",
           "segment_test_indices", "segment_view_indices", "dense_test_indices",
           "dense_test_starts"]


def _randint(high: int, size: int, generator: torch.Generator) -> np.ndarray:
    """`size` integers uniform in [0, high) drawn from `generator`."""
    return torch.randint(0, high, (size,), generator=generator).numpy().astype(np.int64)


def sample_segment_indices(n: int, num_frames: int, ori_len: int = 1,
                           generator: torch.Generator | None = None) -> np.ndarray:
    """Training-time TSN sampling: one random frame per segment (reference ``SampleFrames``).

    ``ori_len`` is the reference's ``clip_len * frame_interval`` (clip_len 1, so AUG.FRAME_INTERVAL):
    the tail of the video it excludes from the segments. Every branch of the reference is kept:
    segments of at least one frame get a random offset each; otherwise, if the video is still longer
    than both the segment count and ``ori_len``, sorted random frames; otherwise evenly rounded
    positions; otherwise frame 0. Indices are taken modulo ``n``.
    """
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    avg = (n - ori_len + 1) // num_frames
    if avg > 0:
        offsets = np.arange(num_frames, dtype=np.int64) * avg + _randint(avg, num_frames, generator)
    elif n > max(num_frames, ori_len):
        offsets = np.sort(_randint(n - ori_len + 1, num_frames, generator))
    elif avg == 0:
        ratio = (n - ori_len + 1.0) / num_frames
        offsets = np.around(np.arange(num_frames) * ratio).astype(np.int64)
    else:
        offsets = np.zeros(num_frames, dtype=np.int64)
    return np.mod(offsets, n)


def segment_test_indices(n: int, num_frames: int, ori_len: int = 1) -> np.ndarray:
    """One deterministic test clip: the centre of each segment, ``int(i * avg + avg / 2)`` with
    ``avg = (n - ori_len + 1) / num_frames`` (official ``_get_test_clips``, where ``ori_len`` is
    AUG.FRAME_INTERVAL: the single-clip val pipeline samples with it); all zeros when the video
    is shorter than ``ori_len``."""
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    avg = (n - ori_len + 1) / float(num_frames)
    if n > ori_len - 1:
        offsets = (np.arange(num_frames) * avg + avg / 2.0).astype(np.int64)
    else:
        offsets = np.zeros(num_frames, dtype=np.int64)
    return np.mod(offsets, n)


def segment_view_indices(n: int, num_frames: int, view: int, num_views: int) -> np.ndarray:
    """Test clip ``view`` of ``num_views`` (TEST.NUM_CLIP > 1).

    The official multi-view test draws each clip like a training clip with ``ori_len`` 1:
    segments ``n // num_frames`` frames wide, a random offset in each (so the last
    ``n % num_frames`` frames are never drawn). Here clip ``view`` takes the offset
    ``floor(avg * (view + 0.5) / num_views)`` in every segment: deterministic, the clips spread
    evenly, and every index inside the official draw's range. Videos shorter than
    ``num_frames`` take the official deterministic ``np.around(i * n / num_frames)``.
    """
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    avg = n // num_frames
    if avg > 0:
        offset = (avg * (2 * view + 1)) // (2 * num_views)
        offsets = np.arange(num_frames, dtype=np.int64) * avg + offset
    else:
        ratio = (n - 1 + 1.0) / num_frames
        offsets = np.around(np.arange(num_frames) * ratio).astype(np.int64)
    return np.mod(offsets, n)


def _dense_span(num_frames: int, interval: int) -> int:
    return (num_frames - 1) * interval + 1


def sample_dense_indices(n: int, num_frames: int, interval: int,
                         generator: torch.Generator | None = None) -> np.ndarray:
    """A strided training clip ``start + i * interval`` (official ``_random_sample_frame_idx``):
    the start is uniform in ``[0, n - span]``; a video no longer than the span starts at 0 and
    repeats the last index that fits (not the video's last frame)."""
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    span = _dense_span(num_frames, interval)
    if span >= n:
        indices = np.arange(num_frames, dtype=np.int64) * interval
        last_fitting = (n - 1) // interval * interval
        return np.minimum(indices, last_fitting)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    start = int(_randint(n - span + 1, 1, generator)[0])
    return start + np.arange(num_frames, dtype=np.int64) * interval


def dense_test_indices(n: int, num_frames: int, interval: int, start: int) -> np.ndarray:
    """A strided test clip from ``start``; past the end the video's last frame repeats (the
    official test pads the video with copies of it)."""
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    indices = start + np.arange(num_frames, dtype=np.int64) * interval
    return np.minimum(indices, n - 1)


def dense_test_starts(n: int, num_frames: int, interval: int, num_clips: int) -> list[int]:
    """Official test starts: ``slide = max(n, span) - span``; one clip starts at ``slide // 2``,
    clip ``i`` of several at ``round(slide / (num_clips - 1) * i)`` (Python's round: half to
    even, in the official order of operations)."""
    slide = max(n, _dense_span(num_frames, interval)) - _dense_span(num_frames, interval)
    if num_clips == 1:
        return [slide // 2]
    return [round(slide / (num_clips - 1) * i) for i in range(num_clips)]


def multi_view_indices(n: int, num_frames: int, num_clips: int, sampling: str = "segment",
                       interval: int = 1, ori_len: int = 1) -> list[np.ndarray]:
    """Frame indices of each of the ``num_clips`` deterministic test clips (temporal order).

    ``ori_len`` is the single-clip segment sampler's span (AUG.FRAME_INTERVAL); ``interval`` the
    dense stride (DATA.FRAME_INTERVAL)."""
    if sampling == "segment":
        if num_clips == 1:
            return [segment_test_indices(n, num_frames, ori_len)]
        return [segment_view_indices(n, num_frames, k, num_clips) for k in range(num_clips)]
    if sampling == "dense":
        return [dense_test_indices(n, num_frames, interval, s)
                for s in dense_test_starts(n, num_frames, interval, num_clips)]
    raise ValueError(f"unknown sampling {sampling!r}; use 'segment' or 'dense'")
