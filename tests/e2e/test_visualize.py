"""tools/visualize.py end to end with tiny trained checkpoints: the modulator maps are the
official code's stored ``modulator`` tensors (checked against the reference port), Grad-CAM for
both models, hooks that leave nothing behind, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import load_cfg
from engine.evaluation import class_text_features
from engine.inference import (capture_outputs, grad_cam, load_trained_model, modulator_maps,
                              span_views, visual_taps)
from tests.helpers.trained import focal, vita  # noqa: F401  (fixtures)
from tests.reference_vfn import VideoFocalNet as Reference
from tools.visualize import main as visualize
from video_focalnet.config import model_kwargs_from_cfg

pytestmark = pytest.mark.slow


def _setup(run):
    cfg = load_cfg(str(run.cfg), ["TEST.NUM_CLIP", 1, "TEST.NUM_CROP", 1])
    model = load_trained_model(cfg, str(run.checkpoint))
    clip = span_views(cfg, str(run.val_videos[1]), None)[0][:1]
    return cfg, model, clip


def _no_state_left(model) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        stray = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert not stray, f"{name} keeps tensors {stray}"


def test_modulator_maps_are_the_official_modulators(focal, tmp_path, capsys):
    cfg, model, clip = _setup(focal)
    reference = Reference(**model_kwargs_from_cfg(cfg)).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        expected_logits = reference(clip)
    for stage in range(len(model.layers)):
        taps = visual_taps(cfg, model, "modulator", stage)
        assert set(taps) == {"spatial", "temporal"}
        with capture_outputs(taps) as raw:
            maps, probs = modulator_maps(model, clip, taps)
        official = reference.layers[stage].blocks[-1].modulation  # stores them as the original
        for name, stored in (("spatial", official.modulator),
                             ("temporal", official.modulator_temporal)):
            torch.testing.assert_close(raw[name][0].permute(0, 3, 1, 2), stored,
                                       rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(maps[name], stored.norm(dim=1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(probs, expected_logits.softmax(-1)[0], rtol=1e-5, atol=1e-6)
    _no_state_left(model)

    # the tool writes the same maps (stage 0: 8x8 tokens of the 32 px clip, 4 frames)
    assert visualize(["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint),
                      str(focal.val_videos[1]), "--out", str(tmp_path), "--stage", "0"]) == 0
    printed = capsys.readouterr().out
    saved = np.load(tmp_path / "000001_modulator.npz")
    official = reference.layers[0].blocks[-1].modulation
    np.testing.assert_allclose(saved["spatial"], official.modulator.norm(dim=1).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saved["temporal"],
                               official.modulator_temporal.norm(dim=1).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert saved["frames"].shape == (4, 32, 32, 3) and saved["spatial"].shape == (4, 8, 8)
    grid = Image.open(tmp_path / "000001_modulator.png")
    animation = Image.open(tmp_path / "000001_modulator.gif")
    assert grid.size[0] > 300 and animation.n_frames == 4
    assert animation.size == (3 * 160, 160)  # input | spatial | temporal, enlarged
    assert f"grid PNG: {tmp_path / '000001_modulator.png'}" in printed


def _manual_grad_cam(model, clip, module, to_maps, target, kwargs):
    """Grad-CAM written out by hand: one hook, the target logit's gradient, channel weights."""
    kept = []
    handle = module.register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        with torch.enable_grad():
            video = clip.clone().requires_grad_(True)
            logit = model(video, **kwargs)[0, target]
            grad, = torch.autograd.grad(logit, kept[0])
    finally:
        handle.remove()
    a, g = to_maps(kept[0].detach()), to_maps(grad)
    return torch.relu((a * g.mean(dim=(0, 1, 2))).sum(-1))


@pytest.mark.parametrize("name,grid", [("focal", 4), ("vita", 2)])
def test_grad_cam_both_models(name, grid, request, tmp_path, capsys):
    run = request.getfixturevalue(name)
    cfg, model, clip = _setup(run)
    text = class_text_features(model, torch.device("cpu"))
    kwargs = {} if text is None else {"text_features": text}
    taps = visual_taps(cfg, model, "gradcam")
    maps, probs, target = grad_cam(model, clip, taps, None, kwargs)
    assert target == int(probs.argmax())
    module, to_maps = taps["features"]
    torch.testing.assert_close(maps["features"],
                               _manual_grad_cam(model, clip, module, to_maps, target, kwargs))
    assert maps["features"].shape == (4, grid, grid) and (maps["features"] >= 0).all()
    assert all(p.grad is None for p in model.parameters())  # no gradient left in the model
    _no_state_left(model)

    other = (target + 1) % probs.numel()
    assert visualize(["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint),
                      str(run.val_videos[1]), "--out", str(tmp_path), "--method", "gradcam",
                      "--target", str(other)]) == 0
    printed = capsys.readouterr().out
    saved = np.load(tmp_path / "000001_gradcam.npz")
    expected, _, _ = grad_cam(model, clip, taps, other, kwargs)
    np.testing.assert_allclose(saved["gradcam"], expected["features"].numpy(), rtol=1e-4,
                               atol=1e-6)
    assert Image.open(tmp_path / "000001_gradcam.gif").n_frames == 4
    assert "Grad-CAM of" in printed and (tmp_path / "000001_gradcam.png").is_file()
    assert f"on the last {'stage' if name == 'focal' else 'vision block'}:" in printed


def test_one_by_one_maps_are_pointed_out(focal, tmp_path, capsys):
    """A stage whose maps are 1 x 1 at the input size (a small model on a small input) only
    colours whole frames; the tool says so and points to an earlier --stage."""
    argv = ["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint),
            str(focal.val_videos[1]), "--method", "gradcam"]
    assert visualize(argv + ["--out", str(tmp_path / "a")]) == 0  # 32 px: 4 x 4 at the last
    assert "note:" not in capsys.readouterr().out
    assert visualize(argv + ["--out", str(tmp_path / "b"), "--opts", "DATA.IMG_SIZE", "8",
                             "DATA.INPUT_SIZE", "8"]) == 0
    printed = capsys.readouterr().out
    assert "gradcam (4, 1, 1)" in printed
    assert "note: at 8 px input the maps of the last stage are 1 x 1" in printed
    assert "an earlier --stage" in printed


def test_bad_input(focal, vita, tmp_path, capsys):
    def error(run, *extra) -> str:
        argv = ["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint),
                "--out", str(tmp_path), *extra]
        assert visualize(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    video = str(focal.val_videos[0])
    assert "no focal modulators" in error(vita, video, "--method", "modulator")
    assert "stage 9 does not exist" in error(focal, video, "--stage", "9")
    assert "'dancing' is not a class" in error(focal, video, "--method", "gradcam",
                                               "--target", "dancing")
    assert "missing.mp4 does not exist" in error(focal, str(tmp_path / "missing.mp4"))
    assert "--target chooses the class" in error(focal, video, "--target", "1")
