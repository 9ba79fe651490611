"""engine/inference.py helpers: time windows, and the views of a window being evaluation's views
of that span."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import datasets
from datasets.synthetic import draw_params, encode_mp4, render_clip
from engine.config import get_cfg
from engine.inference import span_views, time_windows


def test_time_windows():
    assert time_windows(48, 25.0, 0.64, 0.32) == [(0, 16), (8, 24), (16, 32), (24, 40), (32, 48)]
    # the stride does not land on the end: one more window ends at the last frame
    assert time_windows(50, 25.0, 0.64, 0.64) == [(0, 16), (16, 32), (32, 48), (34, 50)]
    assert time_windows(10, 25.0, 2.0, 1.0) == [(0, 10)]  # shorter than one window
    assert time_windows(100, 30.0, 0.01, 0.01)[:2] == [(0, 1), (1, 2)]  # at least one frame
    # a stride of 12.5 frames: windows start at the frame nearest k x 0.5 s, no drift
    assert time_windows(96, 25.0, 1.0, 0.5) == [(0, 25), (13, 38), (25, 50), (38, 63),
                                                (50, 75), (63, 88), (71, 96)]
    hour = time_windows(90000, 25.0, 1.0, 0.5)
    assert len(hour) == 7199 and hour[7000][0] == 87500  # 3500 s in, not 3360 s
    with pytest.raises(ValueError):
        time_windows(10, 25.0, 0.0, 1.0)


def test_window_views_are_evaluation_views_of_the_span(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.concatenate([render_clip(draw_params(rng, p, 32), 16, 32) for p in (0, 2)])
    path = tmp_path / "v.mp4"
    path.write_bytes(encode_mp4(frames))
    cfg = get_cfg()
    cfg.merge_from_list(["DATA.NUM_FRAMES", 4, "DATA.IMG_SIZE", 32, "DATA.INPUT_SIZE", 32,
                         "TEST.NUM_CLIP", 2, "TEST.NUM_CROP", 3, "DATA.DECODER", "pyav"])
    whole, = span_views(cfg, str(path), None)
    assert whole.shape == (6, 4, 3, 32, 32)
    dataset = datasets.VideoDataset([(str(path), 0)], cfg, "test")
    torch.testing.assert_close(whole, dataset[0][0], rtol=0, atol=0)
    # a window: the views of a video made of just that span
    window, all_frames = span_views(cfg, str(path), [(8, 24), (0, 32)])
    torch.testing.assert_close(all_frames, whole, rtol=0, atol=0)
    decoded = datasets.load_frames(str(path), lambda n: np.arange(n), "pyav")[8:24]
    indices = datasets.eval_frame_indices(cfg, 16)
    expected = datasets.eval_clip_views(torch.from_numpy(decoded[indices]), cfg)
    torch.testing.assert_close(window, expected, rtol=0, atol=0)
