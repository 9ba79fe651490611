"""build_dataset / build_loader on tiny real videos: item layout, seeding across workers and
ranks, evaluation sharding, bad videos, and every annotation format."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datasets import build_dataset, build_loader
from datasets.annotations import AnnotationError
from datasets.build import ShardSampler, TrainSampler
from datasets.synthetic import draw_params, encode_mp4, render_clip
from engine.config import get_cfg


def write_video(path, seed=0, frames=12, size=32):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    clip = render_clip(draw_params(np.random.default_rng(seed), seed % 5, size), frames, size)
    with open(path, "wb") as f:
        f.write(encode_mp4(clip))


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i in range(10):
        write_video(str(root / f"v{i}.mp4"), seed=i, frames=10 + i)
    (root / "train.csv").write_text("".join(f"v{i}.mp4,{i % 3}\n" for i in range(10)))
    (root / "val.txt").write_text("".join(f"v{i}.mp4 {i % 3}\n" for i in range(7)))
    return root


def make_cfg(root, **data):
    cfg = get_cfg()
    cfg.DATA.ROOT = str(root)
    cfg.DATA.TRAIN_FILE = str(root / "train.csv")
    cfg.DATA.VAL_FILE = str(root / "val.txt")
    cfg.DATA.NUM_FRAMES = 4
    cfg.DATA.INPUT_SIZE = 24
    cfg.DATA.BATCH_SIZE = 2
    cfg.DATA.NUM_WORKERS = 0
    cfg.MODEL.NUM_CLASSES = 3
    cfg.TEST.BATCH_SIZE = 3
    cfg.AUG.FRAME_INTERVAL = 2
    for k, v in data.items():
        cfg.DATA[k] = v
    return cfg


def test_train_and_val_items(video_dir):
    cfg = make_cfg(video_dir)
    train = build_dataset(cfg, "train")
    assert len(train.samples) == 10 and train.samples[1] == (str(video_dir / "v1.mp4"), 1)
    assert train.classes is None and train.bad_video_count() == 0
    video, label = train[0]
    assert video.shape == (4, 3, 24, 24) and video.dtype == torch.float32 and label == 0
    assert -3 < video.mean() < 3 and video.std() > 0.05
    cfg.TEST.NUM_CLIP, cfg.TEST.NUM_CROP = 2, 3
    val = build_dataset(cfg, "val")
    views, label, index = val[4]
    assert views.shape == (6, 4, 3, 24, 24) and label == 1 and index == 4
    again, _, _ = val[4]
    assert torch.equal(views, again)  # test views are deterministic


def test_augmentation_depends_on_seed_epoch_index_only(video_dir):
    cfg = make_cfg(video_dir)
    ds = build_dataset(cfg, "train")
    a = ds[3][0]
    ds.set_epoch(1)
    b = ds[3][0]
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], a) and not torch.equal(a, b)


def test_one_process_2b_equals_two_ranks_b_with_workers(video_dir):
    cfg = make_cfg(video_dir, BATCH_SIZE=4, NUM_WORKERS=2)
    loader = build_loader(cfg, "train")
    assert isinstance(loader.sampler, TrainSampler)
    loader.sampler.set_epoch(2)
    single = [(v, l) for v, l in loader]
    assert len(single) == 2 and single[0][0].shape == (4, 4, 3, 24, 24)
    ds = build_dataset(cfg, "train")
    per_rank = []
    for rank in range(2):
        sampler = TrainSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=cfg.SEED,
                               drop_last=True)
        sampler.set_epoch(2)
        per_rank.append(list(DataLoader(ds, batch_size=2, sampler=sampler, drop_last=True,
                                        num_workers=1 if rank else 0)))
    for step, (video, label) in enumerate(single):
        ranks_video = [per_rank[r][step][0] for r in range(2)]
        ranks_label = [per_rank[r][step][1] for r in range(2)]
        # DistributedSampler interleaves: rank r holds global positions r, r + 2, ...
        assert torch.equal(video[0::2], ranks_video[0]) and torch.equal(video[1::2], ranks_video[1])
        assert torch.equal(label[0::2], ranks_label[0]) and torch.equal(label[1::2], ranks_label[1])


def test_eval_loader_shards_every_sample_once(video_dir):
    cfg = make_cfg(video_dir)
    loader = build_loader(cfg, "val")
    batches = list(loader)
    assert [len(b[2]) for b in batches] == [3, 3, 1]  # last uneven batch kept
    views, labels, index = batches[0]
    assert views.shape == (3, 1, 4, 3, 24, 24) and labels.tolist() == [0, 1, 2]
    ds = loader.dataset
    seen = []
    for rank in range(3):
        sampler = ShardSampler(ds, num_replicas=3, rank=rank)
        for _, _, idx in DataLoader(ds, batch_size=2, sampler=sampler):
            seen += idx.tolist()
    assert sorted(seen) == list(range(7))


def test_bad_videos_are_replaced_counted_and_logged_once(tmp_path, shared_dir, caplog):
    for i in range(6):
        write_video(str(tmp_path / f"ok{i}.mp4"), seed=i)
    real = (shared_dir / "data" / "real" / "carphone_pristine.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(real[: len(real) // 3])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    names = ["truncated", "empty", "noise", "missing"] + [f"ok{i}" for i in range(6)]
    (tmp_path / "train.csv").write_text("".join(f"{n}.mp4,{i % 3}\n" for i, n in
                                                enumerate(names)))
    (tmp_path / "val.txt").write_text("ok0.mp4,0\n")
    cfg = make_cfg(tmp_path, NUM_WORKERS=2, BATCH_SIZE=5)
    loader = build_loader(cfg, "train")
    with caplog.at_level(logging.WARNING):
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == 2 and all(b[0].shape[0] == 5 for b in batches)
    assert loader.dataset.bad_video_count() == 4  # counted across the worker processes
    # deterministic replacement: the same item twice gives the same clip
    ds = loader.dataset
    assert torch.equal(ds[1][0], ds[1][0])
    cfg2 = make_cfg(tmp_path)
    ds2 = build_dataset(cfg2, "train")
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        for i in range(4):
            ds2[i]
            ds2[i]
    messages = [r.getMessage() for r in caplog.records if "unreadable video" in r.getMessage()]
    assert len(messages) == 4 and any("missing.mp4" in m and "not found" in m for m in messages)
    # evaluation: a replaced item keeps its index, so every index appears exactly once
    val = build_dataset(cfg2, "train")
    val.split, val.train = "val", False
    indices = [val[i][2] for i in range(len(val))]
    assert indices == list(range(len(val))) and val.bad_video_count() == 4


def test_too_many_bad_videos_raise(tmp_path):
    write_video(str(tmp_path / "ok.mp4"))
    (tmp_path / "train.csv").write_text("ok.mp4,0\n" + "".join(f"gone{i}.mp4,1\n"
                                                                for i in range(3)))
    (tmp_path / "val.txt").write_text("ok.mp4,0\n")
    cfg = make_cfg(tmp_path, MAX_BAD_FRACTION=0.8)
    ds = build_dataset(cfg, "train")
    assert all(ds[i][1] == 0 for i in range(4))  # 3 of 4 = 0.75 bad: all replaced by ok.mp4
    assert ds.bad_video_count() == 3
    cfg.DATA.MAX_BAD_FRACTION = 0.5
    ds = build_dataset(cfg, "train")
    with pytest.raises(RuntimeError, match="3 of 4 videos failed.*MAX_BAD_FRACTION=0.5"):
        for i in range(4):
            ds[i]


def test_label_beyond_num_classes_is_an_error(video_dir):
    cfg = make_cfg(video_dir)
    cfg.MODEL.NUM_CLASSES = 2
    with pytest.raises(AnnotationError, match="MODEL.NUM_CLASSES"):
        build_dataset(cfg, "train")


def test_frame_folders(tmp_path):
    from PIL import Image
    for v in range(2):
        folder = tmp_path / f"vid{v}"
        folder.mkdir()
        for i in range(5):
            Image.fromarray(np.full((20, 30, 3), 40 * i + v, np.uint8)).save(
                folder / f"img_{i + 1:05d}.jpg", quality=100)
    (tmp_path / "train.csv").write_text("vid0,0\nvid1,1\n")
    (tmp_path / "val.txt").write_text("vid0 5 0\nvid1 5 1\n")
    cfg = make_cfg(tmp_path, DECODER="frames", INPUT_SIZE=16)
    views, label, _ = build_dataset(cfg, "val")[1]
    assert views.shape == (1, 4, 3, 16, 16) and label == 1
    # one test clip: segment centres over n - AUG.FRAME_INTERVAL + 1 frames (the official
    # single-clip val sampler): avg (5 - 2 + 1) / 4 = 1, int(i + 0.5) = 0, 1, 2, 3
    means = views[0, :, 0].mean(dim=(1, 2)) * 0.229 + 0.485
    assert (means * 255).round().tolist() == pytest.approx([1, 41, 81, 121], abs=2)


# ------------------------------------------------------------------------------------------------
# Dataset layouts
# ------------------------------------------------------------------------------------------------
def test_kinetics_official_csv(tmp_path, caplog):
    (tmp_path / "classes.csv").write_text("id,name\n0,abseiling\n1,air drumming\n")
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,aaa,10,20,train\n"
        "\"air drumming\",bbb,0,10,train\nabseiling,ccc,5,15,train\n")
    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                      "air drumming,ddd,1,11,val\n")
    write_video(str(tmp_path / "train" / "aaa_000010_000020.mp4"))
    write_video(str(tmp_path / "train" / "air drumming" / "bbb_000000_000010.mp4"))
    write_video(str(tmp_path / "ddd_000001_000011.mp4"))  # flat root
    cfg = make_cfg(tmp_path)
    cfg.DATA.DATASET, cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = "kinetics400", "", ""
    cfg.DATA.LABEL_LIST = str(tmp_path / "classes.csv")
    cfg.MODEL.NUM_CLASSES = 2
    with caplog.at_level(logging.WARNING):
        train = build_dataset(cfg, "train")
    assert [(os.path.basename(p), l) for p, l in train.samples] == [
        ("aaa_000010_000020.mp4", 0), ("bbb_000000_000010.mp4", 1)]
    assert any("1 of 3" in r.getMessage() for r in caplog.records)
    val = build_dataset(cfg, "val")
    assert val.samples[0][1] == 1 and val[0][0].shape[0] == 1


def test_ssv2_json(tmp_path):
    labels = {"Pushing something from left to right": "0",
              "Pushing something from right to left": "1", "Holding something": "2"}
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "labels.json").write_text(json.dumps(labels))
    entries = [{"id": "11", "label": "pushing a cup from left to right",
                "template": "Pushing [something] from left to right", "placeholders": ["a cup"]},
               {"id": "12", "label": "holding pen", "template": "Holding [something]",
                "placeholders": ["pen"]}]
    (tmp_path / "labels" / "train.json").write_text(json.dumps(entries))
    (tmp_path / "labels" / "validation.json").write_text(json.dumps(entries[:1]))
    cfg = make_cfg(tmp_path)
    cfg.DATA.DATASET, cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = "ssv2", "", ""
    cfg.AUG.FLIP_LABEL_MAP = "auto"
    train = build_dataset(cfg, "train")
    assert train.samples == [(str(tmp_path / "11.webm"), 0), (str(tmp_path / "12.webm"), 2)]
    assert train.classes[1] == "Pushing something from right to left"
    assert train.flip_label_map == {0: 1, 1: 0}
    entries[1]["template"] = "Juggling [something]"
    (tmp_path / "labels" / "train.json").write_text(json.dumps(entries))
    with pytest.raises(AnnotationError, match="entry 1"):
        build_dataset(cfg, "train")


def test_hmdb51_layout(tmp_path):
    split_dir = tmp_path / "testTrainMulti_7030_splits"
    split_dir.mkdir()
    for c, cls in enumerate(["wave", "brush_hair"]):
        for k in (1, 2):
            (split_dir / f"{cls}_test_split{k}.txt").write_text(
                f"{cls}_a.avi {1 if k == 1 else 2}\n{cls}_b.avi 2\n{cls}_c.avi 0\n")
    cfg = make_cfg(tmp_path)
    cfg.DATA.DATASET, cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = "hmdb51", "", ""
    (tmp_path / "videos").mkdir()
    train = build_dataset(cfg, "train")
    assert train.classes == ["brush_hair", "wave"]
    assert train.samples == [(str(tmp_path / "videos" / "brush_hair" / "brush_hair_a.avi"), 0),
                             (str(tmp_path / "videos" / "wave" / "wave_a.avi"), 1)]
    cfg.DATA.SPLIT = 2
    assert len(build_dataset(cfg, "test").samples) == 4


def test_ucf101_layout(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n"
                                           "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n")
    (lists / "testlist01.txt").write_text("Archery/v_Archery_g02_c01.avi\n")
    cfg = make_cfg(tmp_path)
    cfg.DATA.DATASET, cfg.DATA.TRAIN_FILE, cfg.DATA.VAL_FILE = "ucf101", "", ""
    train = build_dataset(cfg, "train")
    assert train.classes == ["ApplyEyeMakeup", "Archery"]
    assert [l for _, l in train.samples] == [1, 0]
    assert build_dataset(cfg, "val").samples == [
        (str(tmp_path / "Archery" / "v_Archery_g02_c01.avi"), 1)]
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 1\n")
    with pytest.raises(AnnotationError, match="line 1"):
        build_dataset(cfg, "train")


def test_prepare_dataset_tool(tmp_path, capsys):
    import tools.prepare_dataset as prep
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (lists / "trainlist01.txt").write_text("Archery/v_a.avi 2\nApplyEyeMakeup/v_b.avi 1\n")
    (lists / "testlist01.txt").write_text("Archery/v_c.avi\nArchery/v_c.avi\n")
    write_video(str(tmp_path / "UCF-101" / "Archery" / "v_a.avi"))
    write_video(str(tmp_path / "UCF-101" / "Archery" / "v_c.avi"))
    out = tmp_path / "out"
    status = prep.main(["--dataset", "ucf101", "--root", str(tmp_path), "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 1 and "missing file" in text and "listed 2 times" in text
    assert (out / "train.csv").read_text() == "UCF-101/Archery/v_a.avi,1\n"
    assert (out / "classes.txt").read_text() == "ApplyEyeMakeup\nArchery\n"
    assert prep.main(["--validate", str(out / "train.csv"), "--root", str(tmp_path),
                      "--label-list", str(out / "classes.txt")]) == 0
    (out / "bad.csv").write_text("UCF-101/Archery/v_a.avi,5\n")
    assert prep.main(["--validate", str(out / "bad.csv"), "--root", str(tmp_path),
                      "--label-list", str(out / "classes.txt")]) == 1
    assert "outside [0, 1]" in capsys.readouterr().out
