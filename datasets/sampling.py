"""Which frame indices a clip is made of.

Two families, both returning int64 numpy arrays of frame indices into a video of ``n`` frames:

* segment (TSN) sampling, the Video-FocalNets reference: the video is cut into ``num_frames``
  segments and one frame is taken from each (random offset in training, the centre at test time).
  Indices past the end loop back (modulo ``n``), as the reference's ``out_of_bound_opt='loop'``.
* dense sampling, the Vita-CLIP reference: ``num_frames`` frames ``interval`` apart from one start
  (random in training, evenly spaced starts for multi-clip testing). A video shorter than the clip
  span repeats its last frame.

Randomness always comes from the caller's ``torch.Generator`` so that an item's frames are a
function of (seed, epoch, index) only.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_segment_indices", "sample_dense_indices", "multi_view_indices",
           "segment_test_indices", "dense_test_starts"]


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


def segment_test_indices(n: int, num_frames: int, ori_len: int = 1, clip: int = 0,
                         num_clips: int = 1) -> np.ndarray:
    """Deterministic TSN sampling for clip ``clip`` of ``num_clips``.

    With one clip this is the reference's test mode: the centre of each segment,
    ``int(i * avg + avg / 2)`` with ``avg = (n - ori_len + 1) / num_frames``. With several clips the
    reference drew random offsets (nondeterministic metrics); here clip ``k`` takes the point at
    fraction ``(k + 0.5) / num_clips`` of every segment, so the clips tile each segment evenly and the
    single-clip case is exactly the reference's centre.
    """
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    avg = (n - ori_len + 1) / float(num_frames)
    if n > ori_len - 1:
        frac = (clip + 0.5) / num_clips
        offsets = (np.arange(num_frames) * avg + avg * frac).astype(np.int64)
    else:
        offsets = np.zeros(num_frames, dtype=np.int64)
    return np.mod(offsets, n)


def _dense_span(num_frames: int, interval: int) -> int:
    return (num_frames - 1) * interval + 1


def sample_dense_indices(n: int, num_frames: int, interval: int,
                         generator: torch.Generator | None = None,
                         start: int | None = None) -> np.ndarray:
    """A strided clip: ``start + i * interval``; random start in [0, n - span) when not given.

    Videos shorter than the span start at 0 and repeat their last frame (Vita-CLIP's clamping).
    """
    if n <= 0:
        raise ValueError(f"cannot sample frames from a video with {n} frames")
    span = _dense_span(num_frames, interval)
    if start is None:
        if n > span:
            if generator is None:
                generator = torch.Generator().manual_seed(0)
            start = int(_randint(n - span, 1, generator)[0])
        else:
            start = 0
    indices = start + np.arange(num_frames, dtype=np.int64) * interval
    return np.minimum(indices, n - 1)


def dense_test_starts(n: int, num_frames: int, interval: int, num_clips: int) -> list[int]:
    """Evenly spaced clip starts from 0 to ``n - span`` inclusive; one clip is centred."""
    last = max(n - _dense_span(num_frames, interval), 0)
    if num_clips == 1:
        return [last // 2]
    return [int(round(k * last / (num_clips - 1))) for k in range(num_clips)]


def multi_view_indices(n: int, num_frames: int, num_clips: int, sampling: str = "segment",
                       interval: int = 1, ori_len: int = 1) -> list[np.ndarray]:
    """Frame indices of each of the ``num_clips`` deterministic test clips (temporal order)."""
    if sampling == "segment":
        return [segment_test_indices(n, num_frames, ori_len, k, num_clips) for k in range(num_clips)]
    if sampling == "dense":
        return [sample_dense_indices(n, num_frames, interval, start=s)
                for s in dense_test_starts(n, num_frames, interval, num_clips)]
    raise ValueError(f"unknown sampling {sampling!r}; use 'segment' or 'dense'")
