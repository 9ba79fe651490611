"""decord and PyAV return the same frames (real clips and generated files); PyAV seeks."""
from __future__ import annotations

import numpy as np
import pytest

from datasets.decoding import VideoDecodeError, count_frames, load_frames
from datasets.synthetic import draw_params, encode_mp4, render_clip

REAL = ["bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"]


@pytest.mark.parametrize("name", REAL)
def test_decoders_agree_on_real_clips(shared_dir, name):
    path = str(shared_dir / "data" / "real" / name)
    n = count_frames(path, "pyav")
    assert n == count_frames(path, "decord") and n > 100
    rng = np.random.default_rng(0)
    picks = [np.array([0, 1, 2]), np.sort(rng.choice(n, 4, replace=False)),
             np.array([n - 1, 5, 5, n // 2])]  # unsorted with repeats
    if "bigbuckbunny" in name:  # 720p: one set keeps the test fast
        picks = picks[2:]
    for idx in picks:
        a = load_frames(path, lambda _: idx, "decord")
        b = load_frames(path, lambda _: idx, "pyav")
        assert a.dtype == np.uint8 and a.shape[0] == len(idx) and a.shape[-1] == 3
        assert np.array_equal(a, b), f"{name} {idx}: decoders differ"


def test_pyav_seek_matches_full_decode(shared_dir):
    import av
    path = str(shared_dir / "data" / "real" / "bikes.mp4")  # keyframes at 0, 30, 76, 137, ...
    wanted = [100, 140, 141]
    full = {}
    with av.open(path) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in wanted:
                full[i] = frame.to_ndarray(format="rgb24")
            if i > max(wanted):
                break
    got = load_frames(path, lambda _: np.array(wanted), "pyav")
    assert all(np.array_equal(got[k], full[w]) for k, w in enumerate(wanted))


def test_pyav_skipping_unneeded_b_frames_keeps_every_frame_exact(tmp_path):
    """Frames nobody asked for and nobody references are skipped (skip_frame NONREF): whatever
    is requested, including non-reference B-frames themselves, must still be the exact frame."""
    import av

    from tools.workflows.benchmark.loader import make_benchmark_video
    path = str(tmp_path / "bframes.mp4")
    make_benchmark_video(path, 64, 96, seconds=3.0, gop=25)  # x264 veryfast: 3 B-frames
    with av.open(path) as c:
        stream = c.streams.video[0]
        full = [(f.to_ndarray(format="rgb24"), f.pict_type) for f in c.decode(stream)]
    types = [str(t) for _, t in full]
    b_frames = [i for i, t in enumerate(types) if t.endswith("B") or t == "3"]
    assert len(b_frames) > 10  # the file really has B-frames to skip
    rng = np.random.default_rng(0)
    requests = [np.array(b_frames[5:13]), np.array([74, 3, 3, 40]), np.arange(0, 75, 9)]
    requests += [rng.integers(0, len(full), 8) for _ in range(6)]
    for idx in requests:
        got = load_frames(path, lambda n: idx, "pyav")
        assert np.array_equal(got, np.stack([full[i][0] for i in idx])), idx.tolist()


def test_generated_file_both_decoders(tmp_path):
    frames = render_clip(draw_params(np.random.default_rng(3), 2, 48), 20, 48)
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_mp4(frames))
    idx = np.array([0, 7, 9, 19, 3])
    a = load_frames(str(path), lambda n: idx, "decord")
    b = load_frames(str(path), lambda n: idx, "pyav")
    assert a.shape == (5, 48, 48, 3) and np.array_equal(a, b)
    # H.264 crf 18 stays close to the rendered frames
    assert np.abs(a.astype(int) - frames[idx].astype(int)).mean() < 6


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_broken_files_raise_decode_error(tmp_path, shared_dir, decoder):
    real = (shared_dir / "data" / "real" / "carphone_pristine.mp4").read_bytes()
    cases = {"truncated.mp4": real[: len(real) // 2], "empty.mp4": b"",
             "noise.mp4": np.random.default_rng(1).bytes(2000)}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    for name in list(cases) + ["missing.mp4"]:
        with pytest.raises(VideoDecodeError, match=name):
            load_frames(str(tmp_path / name), lambda n: np.arange(4), decoder)
