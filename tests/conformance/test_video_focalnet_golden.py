"""Conformance with the official Video-FocalNet: every golden/vfn*.pt case, built from its config.

Each file holds the official model's weights, an input and every intermediate output (see
/work/shared/golden/README_vfn.md). The model is built only through engine.config and
video_focalnet.build_model, loaded strictly and compared in float64.
"""
from __future__ import annotations

import pytest
import torch

from engine.config import get_cfg, merge_opts, validate_cfg
from tests.helpers.shared import NO_GOLDEN, golden_case, golden_files, missing

import video_focalnet
from video_focalnet.config import model_kwargs_from_cfg

CASES = golden_files("vfn*.pt")
TOL = dict(rtol=1e-7, atol=1e-9)


def _flatten(mapping: dict, prefix: str = ""):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def cfg_from_golden(config: dict):
    """Map the file's nested official config onto ours (EXTRA is information only)."""
    cfg = get_cfg()
    pairs: list = []
    for key, value in _flatten({k: v for k, v in config.items() if k != "EXTRA"}):
        pairs += [key, value]
    merge_opts(cfg, pairs, source="golden config")
    validate_cfg(cfg, source="golden config")
    return cfg


@pytest.fixture(scope="module", params=CASES, ids=[p.stem for p in CASES])
def case(request):
    golden = torch.load(golden_case(request.param), weights_only=True)
    cfg = cfg_from_golden(golden["config"])
    model = video_focalnet.build_model(cfg).double()
    model.load_state_dict(golden["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        outputs = model.forward_intermediates(golden["input"])
        logits = model(golden["input"])
    return golden, model, outputs, logits


def test_golden_cases_present():
    if CASES == [NO_GOLDEN]:
        missing("no golden files: the shared folder is missing")
    assert len(CASES) >= 2, "expected at least vfn_default.pt and vfn_options.pt"


def test_logits_and_features(case):
    golden, _, outputs, logits = case
    torch.testing.assert_close(logits, golden["output"], **TOL)
    torch.testing.assert_close(outputs["logits"], golden["output"], **TOL)
    torch.testing.assert_close(outputs["features"], golden["features"], **TOL)
    torch.testing.assert_close(outputs["frame_features"], golden["frame_features"], **TOL)
    torch.testing.assert_close(outputs["patch_embed_output"], golden["patch_embed_output"], **TOL)


def test_stage_outputs(case):
    golden, _, outputs, _ = case
    assert [list(t.shape) for t in outputs["stage_outputs"]] == golden["stage_output_shapes"]
    assert ([list(t.shape) for t in outputs["stage_outputs_pre_downsample"]]
            == golden["stage_output_pre_downsample_shapes"])
    for mine, ref in zip(outputs["stage_outputs"], golden["stage_outputs"]):
        torch.testing.assert_close(mine, ref, **TOL)
    for mine, ref in zip(outputs["stage_outputs_pre_downsample"],
                         golden["stage_outputs_pre_downsample"]):
        torch.testing.assert_close(mine, ref, **TOL)


def test_num_params(case):
    golden, model, _, _ = case
    assert sum(p.numel() for p in model.parameters()) == golden["num_params"]
    assert len(list(model.buffers())) == 0


def test_reference_port_matches_golden(case):
    """The benchmark baseline (tests/reference_vfn.py) is the official model too."""
    from tests.reference_vfn import VideoFocalNet as Reference

    golden, model, _, _ = case
    kwargs = model_kwargs_from_cfg(cfg_from_golden(golden["config"]))
    for key in ("st_design", "use_checkpoint"):
        kwargs.pop(key)
    reference = Reference(**kwargs).double().eval()
    reference.load_state_dict(golden["state_dict"], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(reference(golden["input"]), golden["output"], **TOL)
