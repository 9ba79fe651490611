"""Annotation parsing, frame sampling, clip transforms and mixup (no video decoding here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.annotations import AnnotationError, read_class_names, read_list_file
from datasets.build import build_mixup, flip_label_map
from datasets.sampling import (dense_test_starts, multi_view_indices, sample_dense_indices,
                               sample_segment_indices, segment_test_indices)
from datasets.transforms import (IMAGENET_MEAN, color_jitter_clip, random_erase_clip,
                                 random_resized_crop_box, rand_augment_clip, eval_views,
                                 train_transform)
from datasets.video_dataset import item_generator, normalization
from engine.config import get_cfg


# ------------------------------------------------------------------------------------------------
# Annotation files
# ------------------------------------------------------------------------------------------------
def test_list_file_formats(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("a/x.mp4,3\n\nb/y.mp4 1\n/abs/z.mp4,0\nframes/v1 120 2\n")
    samples = read_list_file(str(f), root="/data")
    assert samples == [("/data/a/x.mp4", 3), ("/data/b/y.mp4", 1), ("/abs/z.mp4", 0),
                       ("/data/frames/v1", 2)]


@pytest.mark.parametrize("line, message", [
    ("a.mp4,x", "not an integer"),
    ("a.mp4,1,2", "2 comma-separated"),
    ("justapath", "expected"),
    ("a.mp4,7", "outside [0, 4]"),
    ("a.mp4,7", "the class list (DATA.LABEL_LIST, else the dataset's bundled list) has 5 names"),
])
def test_list_file_errors_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "bad.csv"
    f.write_text(f"ok.mp4,0\n{line}\n")
    with pytest.raises(AnnotationError) as err:
        read_list_file(str(f), num_classes=5)
    assert str(f) in str(err.value) and "line 2" in str(err.value) and message in str(err.value)


def test_class_names_csv_and_plain(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("id,name\n1,Putting something, something and something on the table\n0,a b\n")
    assert read_class_names(str(csv)) == ["a b", "Putting something, something and something on "
                                                  "the table"]
    plain = tmp_path / "classes.txt"
    plain.write_text("x\ny\n\nz")
    assert read_class_names(str(plain)) == ["x", "y", "z"]
    gap = tmp_path / "gap.csv"
    gap.write_text("id,name\n0,a\n2,b\n")
    with pytest.raises(AnnotationError, match="without gaps"):
        read_class_names(str(gap))


@pytest.mark.parametrize("text, lines", [("a\n\nb\na\n", "lines 1 and 4"),
                                         ("id,name\n0,a\n1,b\n2,a\n", "lines 2 and 4")])
def test_class_names_duplicates_name_file_and_both_lines(tmp_path, text, lines):
    path = tmp_path / "dup.txt"
    path.write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_class_names(str(path))
    assert str(path) in str(err.value) and lines in str(err.value) and "'a'" in str(err.value)


def test_flip_label_map_auto_and_file(tmp_path):
    classes = ["Pushing something from left to right", "Pushing something from right to left",
               "Turning the camera left while filming something", "Turning the camera right "
               "while filming something", "Holding something", "rotating clockwise",
               "rotating anticlockwise"]
    m = flip_label_map("auto", classes)
    assert m == {0: 1, 1: 0, 2: 3, 3: 2, 5: 6, 6: 5}
    f = tmp_path / "pairs.csv"
    f.write_text("0,4\n")
    assert flip_label_map(str(f), classes) == {0: 4, 4: 0}
    f.write_text("0;4\n")
    with pytest.raises(AnnotationError, match="line 1"):
        flip_label_map(str(f), classes)


# ------------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------------
def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_segment_train_one_frame_per_segment():
    n, t, ori = 100, 8, 4
    avg = (n - ori + 1) // t  # 12
    for seed in range(20):
        idx = sample_segment_indices(n, t, ori, _gen(seed))
        assert idx.dtype == np.int64 and idx.shape == (t,)
        assert np.all(idx // avg == np.arange(t)) and np.all(idx % avg < avg)


def test_segment_train_branches():
    # avg == 0 but n > max(t, ori): sorted random ints in [0, n - ori]
    idx = sample_segment_indices(10, 8, 4, _gen(1))
    assert np.all(np.diff(idx) >= 0) and idx.max() <= 6
    # avg == 0 and n <= max(t, ori): rounded even spacing of (n - ori + 1) / t
    idx = sample_segment_indices(8, 8, 4, _gen(1))
    assert idx.tolist() == np.around(np.arange(8) * 5 / 8).astype(int).tolist()
    # avg < 0 (video shorter than ori_len - 1): zeros
    assert sample_segment_indices(2, 8, 4, _gen(1)).tolist() == [0] * 8
    # ori_len 1 on a short video: every frame once, looping never exceeds n - 1
    assert sample_segment_indices(8, 8, 1, _gen(1)).tolist() == list(range(8))


def test_segment_test_centres_and_multi_clip():
    n, t = 100, 8
    for ori_len in (1, 4):  # one clip: the official test-mode centres over n - ori_len + 1
        avg = (n - ori_len + 1) / t
        assert segment_test_indices(n, t, ori_len).tolist() == \
            [int(i * avg + avg / 2) for i in range(t)]
    assert segment_test_indices(3, 8, 4).tolist() == [0] * 8  # shorter than ori_len - 1
    for n in list(range(1, 40)) + [100, 131, 250, 251]:
        views = multi_view_indices(n, t, num_clips=4, sampling="segment")
        assert len(views) == 4
        avg = n // t
        for v in views:
            if avg > 0:  # inside the official draw's range [k*avg, k*avg + avg - 1]
                k = np.arange(t)
                assert np.all((k * avg <= v) & (v <= k * avg + avg - 1)), (n, v)
            else:  # shorter than t frames: the official deterministic rounding (half to even)
                expected = np.around(np.arange(t) * (n / t)).astype(int) % n  # then loop
                assert v.tolist() == expected.tolist()
        if avg >= 4:  # the clips take distinct offsets, spread over the segment
            assert len({int(v[0]) for v in views}) == 4
        assert all(np.array_equal(a, b) for a, b in zip(views, multi_view_indices(n, t, 4)))
    assert multi_view_indices(100, t, 1)[0].tolist() == segment_test_indices(100, t, 1).tolist()


def test_dense_sampling():
    starts = set()
    for seed in range(60):  # start uniform in [0, n - span], both ends included (official)
        idx = sample_dense_indices(120, 8, 16, _gen(seed))
        assert np.all(np.diff(idx) == 16) and 0 <= idx[0] <= 120 - 113
        starts.add(int(idx[0]))
    assert starts == set(range(8))
    # training clip longer than the video: the last index that fits repeats (official)
    assert sample_dense_indices(50, 8, 16, _gen(0)).tolist() == [0, 16, 32, 48, 48, 48, 48, 48]
    # test: slide = n - span, starts round(slide / 2 * i) half to even, one clip slide // 2
    assert dense_test_starts(250, 8, 16, 3) == [0, 68, 137]
    assert dense_test_starts(132, 8, 16, 3) == [0, 10, 19]
    assert dense_test_starts(213, 8, 16, 1) == [50]
    views = multi_view_indices(213, 8, 3, sampling="dense", interval=16)
    assert [v[0] for v in views] == [0, 50, 100] and views[2][-1] == 212
    # a test clip longer than the video repeats the video's last frame (official padding)
    short = multi_view_indices(50, 8, 1, sampling="dense", interval=16)[0]
    assert short.tolist() == [0, 16, 32, 48, 49, 49, 49, 49]


# ------------------------------------------------------------------------------------------------
# Transforms
# ------------------------------------------------------------------------------------------------
def _cfg(**aug):
    cfg = get_cfg()
    cfg.DATA.INPUT_SIZE = 32
    for k, v in aug.items():
        cfg.AUG[k] = v
    return cfg


def test_normalization_reads_only_data_mean_std():
    cfg = get_cfg()
    assert normalization(cfg) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageNet
    cfg.MODEL.TYPE = "vita_clip"  # the data layer never looks at the model
    assert normalization(cfg)[0] == IMAGENET_MEAN
    cfg.DATA.MEAN, cfg.DATA.STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    assert normalization(cfg) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_random_resized_crop_box_bounds():
    for seed in range(50):
        top, left, h, w = random_resized_crop_box(36, 64, (0.08, 1.0), (3 / 4, 4 / 3), _gen(seed))
        assert 0 <= top and top + h <= 36 and 0 <= left and left + w <= 64 and h > 0 and w > 0


def test_train_transform_same_parameters_for_every_frame():
    frame = torch.randint(0, 256, (1, 40, 60, 3), dtype=torch.uint8)
    clip = frame.repeat(6, 1, 1, 1)
    cfg = _cfg(COLOR_JITTER=0.0, GRAY_SCALE=0.5, FLIP_RATIO=0.5,
               AUTO_AUGMENT="rand-m9-n3-mstd0.5-inc1", REPROB=1.0)
    for seed in range(4):
        out, _ = train_transform(clip, cfg, _gen(seed), IMAGENET_MEAN, (0.229, 0.224, 0.225))
        assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
        # identical input frames stay identical (same crop, flip, RandAugment ops, grayscale, box)
        erased = out[0] != out[1]  # random erasing noise differs per frame, its box does not
        assert torch.equal(erased, out[2] != out[3])
        assert torch.allclose(out[0][~erased], out[1][~erased])


def test_train_transform_is_a_function_of_the_generator():
    clip = torch.randint(0, 256, (4, 40, 60, 3), dtype=torch.uint8)
    cfg = _cfg(COLOR_JITTER=1.0, AUTO_AUGMENT="rand-m7-n4-mstd0.5-inc1")
    mean, std = normalization(cfg)
    a, fa = train_transform(clip, cfg, item_generator(0, 1, 5), mean, std)
    b, fb = train_transform(clip, cfg, item_generator(0, 1, 5), mean, std)
    c, _ = train_transform(clip, cfg, item_generator(0, 2, 5), mean, std)
    assert torch.equal(a, b) and fa == fb and not torch.equal(a, c)


def test_flip_and_normalise_values():
    clip = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    clip[:, :, :16] = 255  # left half white
    cfg = _cfg(COLOR_JITTER=0.0, GRAY_SCALE=0.0, FLIP_RATIO=1.0, SCALE=(1.0, 1.0), RATIO=(1.0, 1.0))
    cfg.DATA.INPUT_SIZE = 28
    out, flipped = train_transform(clip, cfg, _gen(0), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert flipped
    # full-area crop of the 32x32 frame resized to 28: after the flip the right half is white (+1)
    assert out[0, :, :, -1].mean().item() == pytest.approx(1.0)
    assert out[0, :, :, 0].mean().item() == pytest.approx(-1.0)


def test_color_jitter_per_frame_factors_from_generator():
    clip = torch.rand(6, 3, 8, 8)
    a = color_jitter_clip(clip, _gen(3))
    b = color_jitter_clip(clip, _gen(3))
    assert torch.equal(a, b)
    same_frames = clip[:1].repeat(6, 1, 1, 1)
    out = color_jitter_clip(same_frames, _gen(3))
    assert not torch.allclose(out[0], out[1])  # factors re-drawn per frame, as the reference
    assert out.min() >= 0 and out.max() <= 1


def test_rand_augment_and_erasing_restore_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    clip = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    torch.manual_seed(123)
    rand_augment_clip(clip, "rand-m9-n2-mstd0.5", _gen(0))
    random_erase_clip(clip.float(), 1.0, "pixel", 1, _gen(0))
    assert torch.equal(torch.rand(3), expected)


def test_eval_views_crop_major_order_and_positions():
    # a 2-clip video 32x64 whose pixel value encodes the column and clip
    cols = torch.arange(64, dtype=torch.uint8).view(1, 1, 64, 1).expand(4, 32, 64, 3)
    clips = [cols.clone(), (cols + 100).clone()]
    cfg = get_cfg()
    cfg.DATA.INPUT_SIZE = 32
    cfg.TEST.NUM_CROP = 3
    views = eval_views(clips, cfg, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))
    assert views.shape == (6, 4, 3, 32, 32)
    left_col = views[:, 0, 0, 0, 0]
    # crop-major: (crop0 clip0, crop0 clip1, crop1 clip0, ...); crops left, right, middle
    assert left_col.tolist() == pytest.approx([0, 100, 32, 132, 16, 116], abs=1e-3)
    cfg.TEST.NUM_CROP = 1  # short side int(256/224*32)=36 then centre crop 32
    views = eval_views(clips, cfg, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert views.shape == (2, 4, 3, 32, 32)


# ------------------------------------------------------------------------------------------------
# Mixup
# ------------------------------------------------------------------------------------------------
def test_build_mixup_video_cutmix_same_box_all_frames():
    from timm.data import Mixup
    cfg = get_cfg()
    cfg.MODEL.NUM_CLASSES = 5
    cfg.AUG.MIXUP, cfg.AUG.CUTMIX, cfg.AUG.MIXUP_SWITCH_PROB = 0.0, 1.0, 1.0
    mixup = build_mixup(cfg)
    assert isinstance(mixup, Mixup)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1, 1).expand(4, 3, 3, 16, 16).clone()
    out, target = mixup(x, torch.tensor([0, 1, 2, 3]))
    assert out.shape == (4, 3, 3, 16, 16) and target.shape == (4, 5)
    changed = out[0] != 0  # sample 0 gets a box from its partner (sample 3) in every frame
    assert changed.any() and torch.equal(changed[0], changed[1]) and torch.equal(changed[0],
                                                                                  changed[2])
    assert torch.allclose(target.sum(1), torch.ones(4))
    cfg.AUG.MIXUP, cfg.AUG.CUTMIX = 0.0, 0.0
    assert build_mixup(cfg) is None


@pytest.mark.parametrize("position, resize_scale", [("after_crop", 256 / 224),
                                                    ("before_crop", 0.0)])
def test_train_order_follows_the_pipeline_keys(monkeypatch, position, resize_scale):
    """Video-FocalNet: resize the short side to int(256/224 * S), crop, then (if any) RandAugment
    on the crop. Vita-CLIP: RandAugment (bicubic) on the decoded frames, then the random resized
    crop drawn on the decoded frame size."""
    import datasets.transforms as transforms
    seen = {}
    real_box = transforms.random_resized_crop_box

    def box(height, width, *args):
        seen["crop_drawn_on"] = (height, width)
        return real_box(height, width, *args)

    def randaug(clip, config_str, generator, interpolation="random"):
        seen.setdefault("randaug", []).append((tuple(clip.shape[-2:]), interpolation))
        return clip

    monkeypatch.setattr(transforms, "random_resized_crop_box", box)
    monkeypatch.setattr(transforms, "rand_augment_clip", randaug)
    cfg = _cfg(AUTO_AUGMENT="rand-m7-n4-mstd0.5-inc1", RANDAUG_POSITION=position,
               TRAIN_RESIZE_SCALE=resize_scale, RANDAUG_INTERPOLATION="bicubic",
               COLOR_JITTER=0.0, GRAY_SCALE=0.0, FLIP_RATIO=0.0)
    frames = torch.randint(0, 255, (4, 40, 60, 3), dtype=torch.uint8)
    video, _ = transforms.train_transform(frames, cfg, _gen(0), (0.5,) * 3, (0.25,) * 3)
    assert video.shape == (4, 3, 32, 32)
    if position == "before_crop":
        assert seen["randaug"] == [((40, 60), "bicubic")]
        assert seen["crop_drawn_on"] == (40, 60)
    else:  # 32 * 256 / 224 = 36 on the short side, 60 * 36 / 40 + 0.5 -> 54 on the long one
        assert seen["crop_drawn_on"] == (36, 54)
        assert seen["randaug"] == [((32, 32), "bicubic")]


def test_three_crop_layouts_and_resize_rounding():
    from datasets.transforms import resized_shape, three_crop_offsets
    # 4:3 video: W - S is odd after the resize to short side 224 (299 x 224)
    assert resized_shape(240, 320, 224, "half_up") == (224, 299)
    assert resized_shape(144, 176, 224, "half_up") == (224, 274)  # 273.8 + 0.5
    assert resized_shape(144, 176, 224, "floor") == (224, 273)
    assert resized_shape(176, 144, 224, "floor") == (273, 224)  # portrait
    margin = 299 - 224
    assert [l for _, l in three_crop_offsets(224, 299, 224, "mmaction")] == \
        [0, 2 * (margin // 2), margin // 2]  # right crop one pixel short of the edge
    assert [l for _, l in three_crop_offsets(224, 299, 224, "edge")] == [0, margin, margin // 2]
    assert [l for _, l in three_crop_offsets(224, 299, 224, "slowfast")] == \
        [0, margin // 2, margin]
    assert [t for t, _ in three_crop_offsets(300, 224, 224, "mmaction")] == [0, 76, 38]
    with pytest.raises(ValueError, match="three-crop layout"):
        three_crop_offsets(224, 299, 224, "diagonal")
