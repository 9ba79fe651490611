"""The test-time views of both released models against the official pipelines' own output on the
three real clips (../shared/golden/pipeline/, its README has the rules and tolerances).

Each file is checked through the project's public path, the released config loaded with
``engine.config.load_cfg`` and the data functions the Dataset and every tool use
(``datasets.eval_frame_indices``, ``load_frames``, ``eval_clip_views``, ``eval_crop_boxes``):
* frame count, and frame indices (Vita-CLIP equal; Video-FocalNet inside the official random
  sampler's range, equal where that range is one frame, shared by the three crops);
* resized size and crop boxes, view for view;
* pixels within 2 intensity levels at the official indices;
* normalisation constants equal to float32 precision.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import datasets
from datasets.transforms import eval_crop_boxes
from engine.config import load_cfg

RELEASED = {"Video-FocalNet": "configs/video_focalnet/kinetics400/tiny.yaml",
            "Vita-CLIP": "configs/vita_clip/k400/vita_clip_b16.yaml"}
NAMES = [f"{model}_{clip}" for model in ("vfn", "vita")
         for clip in ("bikes", "carphone_pristine", "bigbuckbunny")]


@pytest.fixture(scope="module", params=NAMES)
def golden(request, shared_dir):
    path = shared_dir / "golden" / "pipeline" / f"{request.param}.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    z = np.load(path)
    record = {key: z[key] for key in z.files}
    record["settings"] = json.loads(str(z["settings"]))
    record["video_path"] = str(shared_dir / "data" / "real" / record["settings"]["video"])
    s = record["settings"]
    # the released config at the golden file's settings (clips, crops, frames, size)
    record["cfg"] = load_cfg(RELEASED[s["model"]], [
        "DATA.NUM_FRAMES", s["frames"], "TEST.NUM_CLIP", s["clips"],
        "TEST.NUM_CROP", s["crops"], "DATA.INPUT_SIZE", s["size"]])
    return record


def _views_of_clips(g):
    """(view -> clip) for the crop-major order: view = crop * clips + clip."""
    clips = g["settings"]["clips"]
    return [v % clips for v in range(len(g["frame_indices"]))]


def test_frame_count_and_indices(golden):
    g, cfg = golden, golden["cfg"]
    total = datasets.count_frames(g["video_path"], cfg.DATA.DECODER)
    assert total == int(g["total_frames"])
    ours = datasets.eval_frame_indices(cfg, total).reshape(cfg.TEST.NUM_CLIP, cfg.DATA.NUM_FRAMES)
    for view, clip in enumerate(_views_of_clips(g)):
        low, high = g["index_low"][view], g["index_high"][view]
        assert np.all((low <= ours[clip]) & (ours[clip] <= high)), (view, ours[clip], low, high)
        fixed = low == high
        assert np.array_equal(ours[clip][fixed], low[fixed]), view
    if g["settings"]["model"] == "Vita-CLIP":  # deterministic official sampler: equal
        expected = g["frame_indices"][: cfg.TEST.NUM_CLIP]
        assert np.array_equal(ours, expected)


def test_geometry(golden):
    g, cfg = golden, golden["cfg"]
    frame = datasets.load_frames(g["video_path"], lambda n: np.zeros(1, np.int64),
                                 cfg.DATA.DECODER)[0]
    resized, boxes = eval_crop_boxes(frame.shape[0], frame.shape[1], cfg)
    assert list(resized) == g["resized_hw"].tolist()
    clips = cfg.TEST.NUM_CLIP
    for view, box in enumerate(g["crop_boxes"].tolist()):
        assert list(boxes[view // clips]) == box, view


def test_pixels_within_two_levels(golden):
    g, cfg = golden, golden["cfg"]
    clips, frames = cfg.TEST.NUM_CLIP, cfg.DATA.NUM_FRAMES
    # decode the official indices (Video-FocalNet's are one random draw) and run our views on them
    indices = np.concatenate([g["frame_indices"][c] for c in range(clips)])
    decoded = datasets.load_frames(g["video_path"], lambda n: indices, cfg.DATA.DECODER)
    views = datasets.eval_clip_views(torch.from_numpy(decoded), cfg)
    assert views.shape == (clips * cfg.TEST.NUM_CROP, frames, 3, cfg.DATA.INPUT_SIZE,
                           cfg.DATA.INPUT_SIZE)
    mean, std = g["mean"].astype(np.float32), g["std"].astype(np.float32)
    golden_norm = (g["views_uint8"].astype(np.float32) - mean) / std  # (V, T', S, S, 3)
    ours = views.numpy().transpose(0, 1, 3, 4, 2)[:, g["frame_positions"]]
    levels = np.abs(ours - golden_norm) * std
    assert levels.max() <= 2.0, f"max {levels.max():.2f} levels, mean {levels.mean():.3f}"


def test_normalisation_constants(golden):
    g, cfg = golden, golden["cfg"]
    np.testing.assert_allclose(np.array(cfg.DATA.MEAN) * 255, g["mean"], rtol=1e-6)
    np.testing.assert_allclose(np.array(cfg.DATA.STD) * 255, g["std"], rtol=1e-6)
