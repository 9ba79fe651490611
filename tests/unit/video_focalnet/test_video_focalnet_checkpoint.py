"""Video-FocalNet weights: released video checkpoints, 2-D FocalNet (microsoft and timm formats)."""
from __future__ import annotations

import pickle

import pytest
from timm.models.focalnet import FocalNet
import torch
from yacs.config import CfgNode

from engine.config import get_cfg, merge_opts

import video_focalnet
from video_focalnet import VideoFocalNet, build_model, load_pretrained, load_video_checkpoint
from video_focalnet.checkpoint import checkpoint_filter_fn, convert_timm_focalnet

SIZES = dict(img_size=32, embed_dim=8, depths=(1, 1, 2, 1), num_frames=4)


def _focalnet_2d_state(num_classes: int = 1000, **kwargs) -> dict:
    """A microsoft/FocalNet-format 2-D state dict: the ``spatial`` design has exactly its names."""
    torch.manual_seed(3)
    model = VideoFocalNet(**{**SIZES, **kwargs}, num_classes=num_classes, st_design="spatial")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.state_dict()


def test_imagenet_2d_init_copies_inflates_and_reinitialises(tmp_path):
    source = _focalnet_2d_state()
    path = tmp_path / "focalnet_srf.pth"
    torch.save({"model": source, "epoch": 300}, path)
    torch.manual_seed(0)
    model = VideoFocalNet(**SIZES, num_classes=6, tubelet_size=2)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    summary = load_pretrained(model, str(path))
    state = model.state_dict()

    assert summary["inflated"] == ["patch_embed.proj.weight"]
    expected = source["patch_embed.proj.weight"].unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2
    torch.testing.assert_close(state["patch_embed.proj.weight"], expected)
    for name in summary["copied"]:
        torch.testing.assert_close(state[name], source[name])
    assert len(summary["copied"]) == len(source) - 3  # all but the stem kernel and the head
    assert summary["new"] and all("_temporal" in n for n in summary["new"])
    for name in summary["new"]:
        torch.testing.assert_close(state[name], fresh[name])
    assert set(summary["head"]) == {"head.weight", "head.bias"}
    assert state["head.weight"].shape == (6, 64)
    assert state["head.bias"].abs().sum() > 0  # trunc-normal bias, as the reference
    assert state["head.bias"].abs().max() <= 0.04 and state["head.weight"].std() < 0.05


def test_tubelet_inflation_preserves_static_clips(tmp_path):
    source = _focalnet_2d_state()
    torch.save({"model": source}, tmp_path / "w.pth")
    frame_model = VideoFocalNet(**SIZES, num_classes=6).eval()
    tube_model = VideoFocalNet(**SIZES, num_classes=6, tubelet_size=2).eval()
    load_pretrained(frame_model, str(tmp_path / "w.pth"))
    load_pretrained(tube_model, str(tmp_path / "w.pth"))
    frame = torch.randn(1, 1, 3, 32, 32)
    with torch.no_grad():
        a = frame_model.patch_embed(frame.expand(1, 2, 3, 32, 32))
        b = tube_model.patch_embed(frame.expand(1, 2, 3, 32, 32))
    torch.testing.assert_close(b[0], a[0], rtol=1e-5, atol=1e-5)


def test_joint_design_inflates_depthwise_kernels(tmp_path):
    source = _focalnet_2d_state()
    torch.save({"model": source}, tmp_path / "w.pth")
    model = VideoFocalNet(**SIZES, num_classes=6, st_design="joint")
    summary = load_pretrained(model, str(tmp_path / "w.pth"))
    name = "layers.0.blocks.0.modulation.focal_layers.1.0.weight"
    assert name in summary["inflated"] and not summary["new"]
    got = model.state_dict()[name]
    assert got.shape == (8, 1, 5, 5, 5)
    torch.testing.assert_close(got.sum(2), source[name])
    torch.testing.assert_close(got[:, :, 0], source[name] / 5)


def test_spatial_design_loads_2d_weights_one_to_one(tmp_path):
    source = _focalnet_2d_state(num_classes=6)
    torch.save(source, tmp_path / "bare.pth")  # a bare state dict works too
    model = VideoFocalNet(**SIZES, num_classes=6, st_design="spatial")
    summary = load_pretrained(model, str(tmp_path / "bare.pth"))
    assert not summary["new"] and not summary["inflated"]
    assert len(summary["copied"]) == len(source) - 2


def _timm_2d():
    torch.manual_seed(5)
    model = FocalNet(embed_dim=8, depths=(1, 1, 2, 1), num_classes=10).eval()  # a tiny *_srf
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_timm_focalnet_weights_give_timm_features(tmp_path):
    timm_model = _timm_2d()
    torch.save(timm_model.state_dict(), tmp_path / "timm.pth")
    video = VideoFocalNet(**SIZES, num_classes=6, st_design="spatial").eval()
    summary = load_pretrained(video, str(tmp_path / "timm.pth"))
    assert not summary["new"] and not summary["inflated"]
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = timm_model.forward_head(timm_model.forward_features(images), pre_logits=True)
        got = video.forward_head(video.forward_features(images.unsqueeze(1)), pre_logits=True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_timm_key_mapping_and_filter_fn():
    timm_state = _timm_2d().state_dict()
    converted = convert_timm_focalnet(timm_state)
    assert "patch_embed.proj.weight" in converted and "layers.0.downsample.proj.weight" in converted
    assert "layers.3.downsample.proj.weight" not in converted
    assert converted["layers.0.blocks.0.modulation.f.weight"].shape == (19, 8)
    assert converted["layers.0.blocks.0.mlp.fc1.weight"].shape == (32, 8)
    model = VideoFocalNet(**SIZES, num_classes=6, tubelet_size=2)
    filtered = checkpoint_filter_fn({"model": timm_state}, model)
    assert "head.weight" not in filtered  # 10 classes vs 6
    assert filtered["patch_embed.proj.weight"].shape == (8, 3, 2, 4, 4)
    missing, unexpected = model.load_state_dict(filtered, strict=False)
    assert not unexpected and all("_temporal" in k or k.startswith("head") for k in missing)


def test_mismatched_2d_weights_are_refused(tmp_path):
    torch.save({"model": _focalnet_2d_state(focal_levels=(3, 3, 3, 3))}, tmp_path / "lrf.pth")
    model = VideoFocalNet(**SIZES, num_classes=6)
    with pytest.raises(ValueError, match="shape mismatches.*modulation.f.weight"):
        load_pretrained(model, str(tmp_path / "lrf.pth"))
    with pytest.raises(FileNotFoundError, match="TRAIN.PRETRAINED_PATH"):
        load_pretrained(model, str(tmp_path / "absent.pth"), key="TRAIN.PRETRAINED_PATH")


def test_released_checkpoint_with_pickled_config_loads_strictly(tmp_path):
    torch.manual_seed(0)
    trained = VideoFocalNet(**SIZES, num_classes=6).eval()
    config = CfgNode({"MODEL": CfgNode({"TYPE": "videofocalnet_tiny"}), "EPOCH": 3})
    torch.save({"model": trained.state_dict(), "config": config, "epoch": 3,
                "optimizer": {"state": {}, "param_groups": []}, "max_accuracy": 79.8},
               tmp_path / "ckpt_epoch_3.pth")
    torch.manual_seed(1)
    model = VideoFocalNet(**SIZES, num_classes=6).eval()
    load_video_checkpoint(model, str(tmp_path / "ckpt_epoch_3.pth"))
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x))
    # A video checkpoint also initialises through load_pretrained, head included.
    again = VideoFocalNet(**SIZES, num_classes=6)
    summary = load_pretrained(again, str(tmp_path / "ckpt_epoch_3.pth"))
    assert not summary["head"] and not summary["new"]
    with pytest.raises(ValueError, match="missing"):
        load_video_checkpoint(VideoFocalNet(**SIZES, num_classes=6, st_design="joint"),
                              str(tmp_path / "ckpt_epoch_3.pth"))


def test_ddp_and_compiled_prefixes_are_removed(tmp_path):
    torch.manual_seed(0)
    trained = VideoFocalNet(**SIZES, num_classes=6).eval()
    wrapped = {f"_orig_mod.module.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"state_dict": wrapped}, tmp_path / "ddp.pth")
    model = VideoFocalNet(**SIZES, num_classes=6).eval()
    load_video_checkpoint(model, str(tmp_path / "ddp.pth"))
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_never_executes_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload()}, f, protocol=2)
    model = VideoFocalNet(**SIZES, num_classes=6)
    with pytest.raises(RuntimeError, match="weights_only"):
        load_pretrained(model, str(path))
    with pytest.raises(RuntimeError, match="weights_only"):
        load_video_checkpoint(model, str(path))


def test_build_model_loads_pretrained_path(tmp_path):
    source = _focalnet_2d_state()
    torch.save({"model": source}, tmp_path / "focalnet_tiny_srf.pth")
    cfg = get_cfg()
    merge_opts(cfg, ["DATA.NUM_FRAMES", 4, "DATA.IMG_SIZE", 32, "MODEL.NUM_CLASSES", 6,
                     "MODEL.FOCAL.EMBED_DIM", 8, "MODEL.FOCAL.DEPTHS", [1, 1, 2, 1],
                     "TRAIN.PRETRAINED_PATH", str(tmp_path / "focalnet_tiny_srf.pth")])
    model = build_model(cfg)
    torch.testing.assert_close(model.state_dict()["layers.2.blocks.1.mlp.fc1.weight"],
                               source["layers.2.blocks.1.mlp.fc1.weight"])
    cfg.TRAIN.PRETRAINED_PATH = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="TRAIN.PRETRAINED_PATH"):
        video_focalnet.build_model(cfg)
    cfg.EVAL_MODE = True  # evaluation loads its own checkpoint: no 2-D init, no error
    assert video_focalnet.build_model(cfg).num_classes == 6
