"""Checkpoints: atomic writes, weights-only loading, reference layouts, auto-resume."""
from __future__ import annotations

import os
import pickle
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from yacs.config import CfgNode

from common.fileio import atomic_torch_save
from engine import checkpoint as ck
from engine.config import get_cfg


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))


def _ours(model, epoch=0):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return ck.build_checkpoint(model, opt, None, None, epoch=epoch, iteration=5 * (epoch + 1),
                               max_accuracy=12.5, config_yaml=get_cfg().dump())


def test_our_checkpoint_is_plain_and_loads_weights_only(tmp_path):
    model = _model()
    ckpt = _ours(model)
    path = tmp_path / "latest.pth"
    atomic_torch_save(ckpt, str(path))
    # plain torch.load with weights_only=True and no allow-list must read it
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ck.FORMAT and isinstance(raw["config"], str)
    assert raw["epoch"] == 0 and raw["iteration"] == 5 and raw["max_accuracy"] == 12.5
    assert set(raw["rng"][0]) >= {"torch", "numpy", "python"}
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    missing, unexpected = ck.load_model_weights(fresh, str(path))
    assert missing == [] and unexpected == []
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_strict_loading_of_our_files_reports_mismatch(tmp_path):
    ckpt = _ours(_model())
    path = tmp_path / "ours.pth"
    atomic_torch_save(ckpt, str(path))
    other = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    with pytest.raises(ck.CheckpointError, match="does not match the model"):
        ck.load_model_weights(other, str(path))
    missing, unexpected = ck.load_model_weights(other, str(path), strict=False)
    assert missing == ["2.weight", "2.bias"] and unexpected == []


def test_atomic_save_keeps_previous_file_when_write_dies(tmp_path, monkeypatch):
    path = tmp_path / "latest.pth"
    atomic_torch_save({"epoch": 1, "w": torch.ones(3)}, str(path))

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PARTIAL")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"epoch": 2, "w": torch.zeros(3)}, str(path))
    monkeypatch.undo()
    kept = ck.safe_load(str(path))
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["latest.pth"]  # no temporary file left behind


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Exploit(str(target))}, path)
    with pytest.raises(ck.UnsafeCheckpointError) as err:
        ck.safe_load(str(path))
    assert not target.exists()
    message = str(err.value)
    assert "refusing to load" in message and str(path) in message
    assert "builtins.open" in message or "open" in message
    with pytest.raises(ck.UnsafeCheckpointError):
        ck.load_model_weights(_model(), str(path))
    assert not target.exists()


def test_reference_video_focalnet_checkpoint_loads(tmp_path):
    """Written the way the reference writes it: torch.save of a dict with a real CfgNode."""
    model = _model()
    cfg = get_cfg()
    cfg.TRAIN.BASE_LR = 1.25e-4
    assert isinstance(cfg, CfgNode)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    ref = {"model": model.state_dict(), "optimizer": opt.state_dict(),
           "lr_scheduler": {"t_initial": 100, "base_values": [0.1], "warmup_t": 5,
                            "noise_range_t": None},
           "max_accuracy": 71.3, "epoch": 9, "config": cfg,
           "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 12}}}
    path = tmp_path / "ckpt_epoch_9.pth"
    torch.save(ref, path)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only needs the allow-list
        torch.load(path, weights_only=True)
    loaded = ck.safe_load(str(path))
    assert loaded["epoch"] == 9 and loaded["max_accuracy"] == 71.3
    assert loaded["config"]["TRAIN"]["BASE_LR"] == 1.25e-4
    assert not isinstance(loaded["config"], CfgNode)  # plain data: no yacs code ran
    assert "BASE_LR: 0.000125" in ck.checkpoint_to_cfg_yaml(loaded)
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    assert ck.load_model_weights(fresh, loaded) == ([], [])
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_reference_vita_clip_checkpoint_loads_and_strips_module(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    ref = {"model": OrderedDict(("module." + k, v) for k, v in model.state_dict().items()),
           "optimizer": opt.state_dict(), "lr_sched": sched.state_dict(),
           "loss_scaler": scaler.state_dict(), "next_step": 5000}
    path = tmp_path / "checkpoint-5000.pth"
    torch.save(ref, path)
    loaded = ck.safe_load(str(path))
    assert loaded["next_step"] == 5000
    assert all(k.startswith("module.") for k in loaded["model"])
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    assert ck.load_model_weights(fresh, loaded) == ([], [])
    assert torch.equal(fresh[0].bias, model[0].bias)


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ck.safe_load(str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(ck.CheckpointError, match="bad.pth"):
        ck.safe_load(str(bad))


def test_find_resume_checkpoint_skips_corrupt_latest(tmp_path, caplog):
    model = _model()
    assert ck.find_resume_checkpoint(str(tmp_path)) == (None, None)
    for epoch in (0, 1):
        ck.save_checkpoint(_ours(model, epoch), str(tmp_path), epoch, save_freq=1,
                           is_best=epoch == 0)
    assert sorted(os.listdir(tmp_path)) == ["best.pth", "ckpt_epoch_0.pth", "ckpt_epoch_1.pth",
                                            "latest.pth"]
    path, ckpt = ck.find_resume_checkpoint(str(tmp_path))
    assert path.endswith("latest.pth") and ckpt["epoch"] == 1
    assert ck.safe_load(str(tmp_path / "best.pth"))["epoch"] == 0
    # a torn latest.pth (e.g. copied by hand) and a torn newest numbered file: fall back
    data = (tmp_path / "latest.pth").read_bytes()
    (tmp_path / "latest.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "ckpt_epoch_1.pth").unlink()
    (tmp_path / "ckpt_epoch_1.pth").write_bytes(b"garbage")
    with caplog.at_level("WARNING"):
        path, ckpt = ck.find_resume_checkpoint(str(tmp_path))
    assert path.endswith("ckpt_epoch_0.pth") and ckpt["epoch"] == 0
    assert "skipping checkpoint" in caplog.text and "latest.pth" in caplog.text


def test_save_freq_controls_numbered_files(tmp_path):
    model = _model()
    for epoch in range(4):
        ck.save_checkpoint(_ours(model, epoch), str(tmp_path), epoch, save_freq=2,
                           is_best=False, last_epoch=epoch == 3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt_epoch_1.pth", "ckpt_epoch_3.pth", "latest.pth"]


def test_rng_state_roundtrip_through_a_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    atomic_torch_save({"rng": [ck.capture_rng_state()]}, str(tmp_path / "r.pth"))
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ck.restore_rng_state(torch.load(tmp_path / "r.pth", weights_only=True)["rng"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_unwritable_output_is_reported(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="not writable"):
        ck.ensure_writable_dir(str(blocker / "run"))
    if os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="--output"):
                ck.ensure_writable_dir(str(locked))
        finally:
            locked.chmod(0o700)


def test_copies_when_hard_links_are_unavailable(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    ck.save_checkpoint(_ours(_model(), 0), str(tmp_path), 0, save_freq=1, is_best=True)
    assert sorted(os.listdir(tmp_path)) == ["best.pth", "ckpt_epoch_0.pth", "latest.pth"]
    for name in ("best.pth", "ckpt_epoch_0.pth"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "latest.pth").read_bytes()


def test_wrapper_prefixes_are_stripped_on_loading(tmp_path):
    model = _model()
    compiled_ddp = OrderedDict(("module._orig_mod." + k, v) for k, v in model.state_dict().items())
    assert set(ck.extract_state_dict({"model": compiled_ddp})) == set(model.state_dict())
    fresh = nn.DataParallel(nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3)))  # loads unwrapped
    assert ck.load_model_weights(fresh, {"model": compiled_ddp}) == ([], [])
    assert torch.equal(fresh.module[0].weight, model[0].weight)
    saved = ck.build_checkpoint(fresh, epoch=0, iteration=0, max_accuracy=0.0, config_yaml="")
    assert set(saved["model"]) == set(model.state_dict())  # saved without the wrapper prefix


def test_checkpoint_temporaries_follow_the_project_convention(tmp_path, monkeypatch):
    from common.fileio import is_temp_file, remove_stale_temp_files

    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(a), real_replace(a, b))[1])
    ck.save_checkpoint(_ours(_model(), 0), str(tmp_path), 0, save_freq=1, is_best=True)
    assert len(seen) == 3 and all(is_temp_file(p) for p in seen)
    (tmp_path / os.path.basename(seen[0])).write_bytes(b"half")  # as a kill would leave it
    assert remove_stale_temp_files(str(tmp_path)) == [str(tmp_path / os.path.basename(seen[0]))]
