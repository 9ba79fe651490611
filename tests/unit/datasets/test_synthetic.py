"""The synthetic motion set: deterministic, time-reversed pairs, real decodable mp4 files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from datasets.annotations import read_class_names, read_list_file
from datasets.decoding import load_frames
from datasets.synthetic import (CLASS_NAMES, MARKER, draw_params, encode_mp4, ensure_synthetic,
                                generate_synthetic, render_clip, synthetic_settings)


def test_generation_is_deterministic_and_decodes(tmp_path):
    a = generate_synthetic(str(tmp_path / "a"), num_train=12, num_val=4, num_frames=8, size=32,
                           seed=5, workers=1, progress=False)
    generate_synthetic(str(tmp_path / "b"), num_train=12, num_val=4, num_frames=8, size=32,
                       seed=5, workers=1, progress=False)
    generate_synthetic(str(tmp_path / "c"), num_train=12, num_val=4, num_frames=8, size=32,
                       seed=6, workers=1, progress=False)
    assert a["seed"] == 5 and (tmp_path / "a" / MARKER).is_file()
    train = read_list_file(str(tmp_path / "a" / "train.csv"), str(tmp_path / "a"))
    val = read_list_file(str(tmp_path / "a" / "val.csv"), str(tmp_path / "a"))
    assert len(train) == 12 and len(val) == 4
    assert [l for _, l in train] == [i % 10 for i in range(12)]
    assert read_class_names(str(tmp_path / "a" / "classes.txt")) == list(CLASS_NAMES)
    for (path, _), k in zip(train[:3], range(3)):
        same = path.replace("/a/", "/b/")
        other = path.replace("/a/", "/c/")
        x = load_frames(path, lambda n: np.arange(n), "decord")
        assert x.shape == (8, 32, 32, 3)
        assert np.array_equal(x, load_frames(path, lambda n: np.arange(n), "pyav"))
        assert np.array_equal(x, load_frames(same, lambda n: np.arange(n), "pyav"))
        assert not np.array_equal(x, load_frames(other, lambda n: np.arange(n), "pyav"))


@pytest.mark.parametrize("pair", range(5))
def test_pairs_are_time_reversals(pair):
    params = draw_params(np.random.default_rng(100 + pair), pair, 64)  # the demo's size
    forward = render_clip(params, 10, 64)
    backward = render_clip(params, 10, 64, reverse=True)
    assert np.array_equal(forward[::-1], backward)
    assert not np.array_equal(forward[0], forward[-1])  # there is motion to see
    # the encoded pair decodes to (nearly) reversed frame sets
    dec_f = load_frames_from_bytes(encode_mp4(forward))
    dec_b = load_frames_from_bytes(encode_mp4(backward))
    assert np.abs(dec_f[::-1].astype(int) - dec_b.astype(int)).mean() < 4


def load_frames_from_bytes(data: bytes) -> np.ndarray:
    import io

    import av
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _object_mask(pair: int, seed: int, size: int = 48) -> np.ndarray:
    params = draw_params(np.random.default_rng(seed), pair, size)
    params.update(bg_kind="solid", texture="solid", bg1=np.zeros(3), fg1=np.full(3, 255.0))
    return render_clip(params, 8, size)[..., 0] > 127


@pytest.mark.parametrize("seed", [1, 2])
def test_motion_directions(seed):
    """Forward classes: moving left, moving up, growing, appearing (solid colours to measure)."""
    xs = np.arange(48)
    left = _object_mask(0, seed)
    cx = [(m * xs[None, :]).sum() / m.sum() for m in left]
    assert cx[-1] < cx[0] - 8
    up = _object_mask(1, seed)
    cy = [(m * xs[:, None]).sum() / m.sum() for m in up]
    assert cy[-1] < cy[0] - 8
    grow = _object_mask(2, seed).sum(axis=(1, 2))
    assert grow[-1] > 2.5 * grow[0]
    params = draw_params(np.random.default_rng(seed), 4, 48)
    params.update(bg_kind="solid", texture="solid", bg1=np.zeros(3), fg1=np.full(3, 255.0))
    brightness = render_clip(params, 8, 48).mean(axis=(1, 2, 3))
    assert np.all(np.diff(brightness) > 0)


def test_dataset_synthetic_generates_on_first_use(tmp_path):
    from datasets import build_dataset
    from engine.config import get_cfg
    cfg = get_cfg()
    cfg.DATA.DATASET, cfg.DATA.ROOT = "synthetic", str(tmp_path / "syn")
    cfg.DATA.SYNTHETIC.NUM_TRAIN, cfg.DATA.SYNTHETIC.NUM_VAL = 10, 4
    cfg.DATA.SYNTHETIC.NUM_FRAMES, cfg.DATA.SYNTHETIC.SIZE = 8, 32
    cfg.DATA.NUM_FRAMES, cfg.DATA.INPUT_SIZE, cfg.MODEL.NUM_CLASSES = 4, 32, 10
    train = build_dataset(cfg, "train")
    assert len(train) == 10 and train.classes == list(CLASS_NAMES)
    video, label = train[3]
    assert video.shape == (4, 3, 32, 32) and label == 3
    views, label, index = build_dataset(cfg, "val")[1]
    assert views.shape == (1, 4, 3, 32, 32) and (label, index) == (1, 1)


def test_ensure_synthetic_reuses_and_rejects_mismatch(tmp_path):
    settings = synthetic_settings(10, 10, 4, 16, 0)
    ensure_synthetic(str(tmp_path), settings)
    stamp = (tmp_path / "train.csv").stat().st_mtime_ns
    ensure_synthetic(str(tmp_path), settings)  # marker present: nothing regenerated
    assert (tmp_path / "train.csv").stat().st_mtime_ns == stamp
    assert not (tmp_path / ".generating.lock").exists()
    with pytest.raises(RuntimeError, match="another folder"):
        ensure_synthetic(str(tmp_path), synthetic_settings(11, 10, 4, 16, 0))


def test_ensure_synthetic_rewrites_a_set_from_an_older_generator(tmp_path):
    settings = synthetic_settings(10, 10, 4, 16, 0)
    ensure_synthetic(str(tmp_path), settings)
    marker = tmp_path / MARKER
    old = dict(settings, version=settings["version"] - 1)
    marker.write_text(json.dumps(old))
    video = tmp_path / "videos" / "train" / "000000.mp4"
    video.write_bytes(b"stale")
    ensure_synthetic(str(tmp_path), settings)
    assert json.loads(marker.read_text()) == settings
    assert video.read_bytes() != b"stale" and video.stat().st_size > 100
