"""Video-FocalNet model: sizes, options against the reference port, designs, forward hooks,
config building and the model family the engine sees."""
from __future__ import annotations

import logging
from pathlib import Path
import math

import pytest
import timm
import torch

import datasets
from engine.config import ConfigError, get_cfg, load_cfg, merge_opts, validate_cfg
from tests.reference_vfn import VideoFocalNet as Reference

from video_focalnet import ST_DESIGNS as DESIGNS
from video_focalnet import VideoFocalNet, build_model
from video_focalnet.config import variant_of
from video_focalnet.family import FAMILY

SMALL = dict(img_size=32, embed_dim=8, depths=(1, 1, 1, 1), num_classes=5, num_frames=4,
             drop_path_rate=0.0)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights of unit scale everywhere, so that every parameter visibly matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            scale = 1 / math.sqrt(fan_in) if p.ndim > 1 else 0.1
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale
            p.copy_(noise + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


def _video(batch=2, frames=4, size=32, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, size, size, generator=gen, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,params_m", [("video_focalnet_tiny", 49.55),
                                           ("video_focalnet_small", 88.74),
                                           ("video_focalnet_base", 157.39)])
def test_released_param_counts(name, params_m):
    with torch.device("meta"):
        model = timm.create_model(name, num_frames=8, num_classes=400)
    assert isinstance(model, VideoFocalNet)
    assert _num_params(model) / 1e6 == pytest.approx(params_m, abs=0.006)
    head = model.head.weight.numel() + model.head.bias.numel()
    assert head == 400 * model.num_features + 400


def test_timm_create_model_runs():
    model = timm.create_model("video_focalnet_tiny", num_frames=2, num_classes=7, img_size=32)
    assert model.num_frames == 2 and model.num_classes == 7
    with torch.no_grad():
        assert model(torch.randn(1, 2, 3, 32, 32)).shape == (1, 7)


def test_state_dict_names_are_official():
    model = VideoFocalNet(**SMALL)
    keys = set(model.state_dict())
    block = "layers.0.blocks.0."
    for suffix in ("norm1.weight", "modulation.f.weight", "modulation.h.weight",
                   "modulation.proj.bias", "modulation.focal_layers.1.0.weight",
                   "modulation.f_temporal.weight", "modulation.h_temporal.bias",
                   "modulation.focal_layers_temporal.0.0.weight", "mlp.fc1.weight",
                   "mlp.fc2.bias", "norm2.bias"):
        assert block + suffix in keys
    assert "layers.2.downsample.proj.weight" in keys and "layers.3.downsample.proj.weight" not in keys
    assert {"patch_embed.proj.weight", "patch_embed.norm.weight", "norm.weight", "head.weight"} <= keys
    sd = model.state_dict()
    assert sd[block + "modulation.h.weight"].shape == (8, 8, 1, 1)
    assert sd[block + "modulation.h_temporal.weight"].shape == (8, 8, 1)
    assert sd[block + "modulation.focal_layers_temporal.1.0.weight"].shape == (8, 8, 5)
    assert sd[block + "modulation.focal_layers.0.0.weight"].shape == (8, 1, 3, 3)


# ---------------------------------------------------------------------------------------------
# Options: identical to the reference port (float64) for settings beyond the golden files
# ---------------------------------------------------------------------------------------------
OPTIONS = [
    dict(tubelet_size=2),
    dict(use_conv_embed=True),
    dict(use_layerscale=True, use_postln=True),
    dict(use_postln_in_modulation=True, normalize_modulator=True),
    dict(focal_levels=(1, 3, 2, 4), focal_windows=(5, 3, 1, 3)),
    dict(patch_size=2, img_size=16, mlp_ratio=2.0, patch_norm=False, depths=(2, 1, 1, 2)),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o))
def test_matches_reference_port(options):
    kwargs = {**SMALL, **options}
    model = VideoFocalNet(**kwargs).double().eval()
    _randomise(model)
    reference = Reference(**kwargs).double().eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    x = _video(size=kwargs["img_size"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(model.forward_intermediates(x)["frame_features"],
                                   reference.forward_features(x), rtol=1e-7, atol=1e-9)


def test_frame_count_comes_from_the_input():
    model = VideoFocalNet(**{**SMALL, "num_frames": 8}).double().eval()
    _randomise(model)
    reference = Reference(**{**SMALL, "num_frames": 6}).double().eval()
    reference.load_state_dict(model.state_dict())
    x = _video(frames=6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-7, atol=1e-9)


def test_forward_features_and_head_compose():
    model = VideoFocalNet(**SMALL).double().eval()
    x = _video()
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 4, 1, 1, 64)
        inter = model.forward_intermediates(x)
        torch.testing.assert_close(model.forward_head(tokens, pre_logits=True), inter["features"])
        torch.testing.assert_close(model.forward_head(tokens), model(x))


def test_no_tensors_stored_on_modules():
    model = VideoFocalNet(**SMALL)
    model(torch.randn(1, 4, 3, 32, 32)).sum().backward()
    for name, module in model.named_modules():
        stray = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert not stray, f"{name} keeps tensors {stray}"


def test_bad_inputs_have_clear_errors():
    model = VideoFocalNet(**{**SMALL, "tubelet_size": 2})
    with pytest.raises(ValueError, match="tubelets"):
        model(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="total stride"):
        model(torch.randn(1, 4, 3, 36, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="img_size"):
        VideoFocalNet(**{**SMALL, "img_size": 40})
    with pytest.raises(ValueError, match="tubelet"):
        VideoFocalNet(**{**SMALL, "tubelet_size": 2, "use_conv_embed": True})


# ---------------------------------------------------------------------------------------------
# Forward hooks: every declared module of the token mixer runs
# ---------------------------------------------------------------------------------------------
def test_forward_hooks_capture_the_official_modulators():
    """``h(ctx_all)`` and ``h_temporal(ctx_all_t)`` seen by forward hooks are the official code's
    ``modulator`` / ``modulator_temporal`` (the maps the paper visualises), as tokens
    ``(B*T, H, W, C)``; the focal layers' hooks see tokens of the block's shape."""
    kwargs = {**SMALL, "focal_levels": (2, 3, 1, 2)}
    model = VideoFocalNet(**kwargs).double().eval()
    _randomise(model)
    reference = Reference(**kwargs).double().eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    seen: dict[str, tuple] = {}

    def keep(name):
        def hook(module, inputs, output):
            seen[name] = (tuple(inputs[0].shape), output)
        return hook

    for name, module in model.named_modules():
        if name.endswith(("modulation.h", "modulation.h_temporal")) or ".focal_layers" in name:
            module.register_forward_hook(keep(name))
    x = _video()
    with torch.no_grad():
        model(x)
        reference(x)
    for i, (dim, size) in enumerate([(8, 8), (16, 4), (32, 2), (64, 1)]):
        prefix = f"layers.{i}.blocks.0.modulation"
        official = reference.layers[i].blocks[0].modulation
        tokens = (2 * 4, size, size, dim)
        for branch, expected in (("h", official.modulator),
                                 ("h_temporal", official.modulator_temporal)):
            shape_in, out = seen[f"{prefix}.{branch}"]
            assert shape_in == tokens and out.shape == tokens
            torch.testing.assert_close(out.permute(0, 3, 1, 2), expected, rtol=1e-10, atol=1e-12)
        for level in range(kwargs["focal_levels"][i]):
            for layer in (f"{prefix}.focal_layers.{level}", f"{prefix}.focal_layers.{level}.0",
                          f"{prefix}.focal_layers.{level}.1"):
                assert seen[layer][0] == tokens and seen[layer][1].shape == tokens
            temporal = f"{prefix}.focal_layers_temporal.{level}"
            for layer in (temporal, f"{temporal}.0", f"{temporal}.1"):
                assert seen[layer][0] == (2, 4, size * size, dim)
                assert seen[layer][1].shape == (2, 4, size * size, dim)
        assert f"{prefix}.focal_layers.{kwargs['focal_levels'][i]}" not in seen


@pytest.mark.parametrize("design", DESIGNS)
def test_every_declared_mixer_module_runs(design):
    """Hooks fire on every submodule of the mixer except ``f``/``f_temporal``, whose row blocks
    are fused into the GEMMs (documented in video_focalnet/modulation.py)."""
    model = VideoFocalNet(**SMALL, st_design=design, use_postln_in_modulation=True)
    mixer = model.layers[0].blocks[0].modulation
    fired = set()
    for name, module in mixer.named_modules():
        if name:
            module.register_forward_hook(lambda m, i, o, name=name: fired.add(name))
    model(torch.randn(1, 4, 3, 32, 32))
    declared = {name for name, module in mixer.named_modules()
                if name and not isinstance(module, torch.nn.ModuleList)}  # lists only hold
    assert declared - fired == declared & {"f", "f_temporal"}
    assert {"h", "ln", "proj", "focal_layers.0", "focal_layers.1.0"} <= fired
    assert ("h_temporal" in fired) == (design not in ("spatial", "joint"))


def test_flops_are_attributed_to_the_modules_that_compute_them():
    fvcore = pytest.importorskip("fvcore.nn")
    model = VideoFocalNet(**SMALL).eval()
    analysis = fvcore.FlopCountAnalysis(model, (torch.randn(2, 4, 3, 32, 32),))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    flops = analysis.by_module()
    mixer, tokens, dim = "layers.0.blocks.0.modulation", 2 * 4 * 8 * 8, 8
    assert flops[f"{mixer}.h"] == flops[f"{mixer}.h_temporal"] == tokens * dim * dim
    assert flops[f"{mixer}.focal_layers.1"] == tokens * dim * 5 * 5  # depthwise 5x5
    assert flops[f"{mixer}.focal_layers_temporal.1.0"] == tokens * dim * dim * 5  # dense, k=5


# ---------------------------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("design", DESIGNS)
def test_design_trains_and_mixes_time_as_described(design):
    torch.manual_seed(0)
    model = VideoFocalNet(**SMALL, st_design=design).double()
    _randomise(model)
    names = [n for n, _ in model.named_parameters()]
    temporal = [n for n in names if "_temporal" in n]
    assert bool(temporal) == (design not in ("spatial", "joint"))
    if design == "joint":
        w = model.state_dict()["layers.0.blocks.0.modulation.focal_layers.1.0.weight"]
        assert w.shape == (8, 1, 5, 5, 5)
    if design in ("spatial_temporal", "temporal_spatial"):
        assert model.state_dict()["layers.0.blocks.0.modulation.f_temporal.weight"].shape == (19, 8)

    x = _video()
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    # Changing frame 0 changes frame 2's features iff the mixer looks along time.
    model.eval()
    y = x.clone()
    y[:, 0] += 1.0
    with torch.no_grad():
        a = model.forward_intermediates(x)["frame_features"].view(2, 4, -1)[:, 2]
        b = model.forward_intermediates(y)["frame_features"].view(2, 4, -1)[:, 2]
    assert torch.allclose(a, b) == (design == "spatial")


def test_designs_differ_and_orders_differ():
    x = _video()
    outputs = {}
    for design in DESIGNS:
        torch.manual_seed(0)
        model = VideoFocalNet(**SMALL, st_design=design).double().eval()
        _randomise(model)
        with torch.no_grad():
            outputs[design] = model(x)
    for a in DESIGNS:
        for b in DESIGNS:
            if a < b:
                assert not torch.allclose(outputs[a], outputs[b]), (a, b)


def test_spatial_design_equals_parallel_with_neutral_temporal_branch():
    """parallel = spatial * h_temporal(...); with h_temporal = constant 1 they coincide."""
    torch.manual_seed(0)
    parallel = VideoFocalNet(**SMALL).double().eval()
    _randomise(parallel)
    spatial = VideoFocalNet(**SMALL, st_design="spatial").double().eval()
    spatial.load_state_dict(parallel.state_dict(), strict=False)
    with torch.no_grad():
        for name, p in parallel.named_parameters():
            if name.endswith("h_temporal.weight"):
                p.zero_()
            elif name.endswith("h_temporal.bias"):
                p.fill_(1.0)
        x = _video()
        torch.testing.assert_close(parallel(x), spatial(x), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Training-time behaviour
# ---------------------------------------------------------------------------------------------
def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = VideoFocalNet(**{**SMALL, "drop_path_rate": 0.0}).double()
    x = _video()
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g)


def test_drop_path_schedule_and_randomness():
    model = VideoFocalNet(**{**SMALL, "depths": (1, 1, 2, 1), "drop_path_rate": 0.4})
    rates = [blk.drop_path.drop_prob if hasattr(blk.drop_path, "drop_prob") else 0.0
             for stage in model.layers for blk in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    x = torch.randn(2, 4, 3, 32, 32)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_no_weight_decay_names_layer_scales():
    model = VideoFocalNet(**SMALL, use_layerscale=True)
    skip = model.no_weight_decay()
    gammas = {n for n, _ in model.named_parameters() if n.endswith(("gamma_1", "gamma_2"))}
    assert skip == gammas and len(gammas) == 2 * 4
    assert VideoFocalNet(**SMALL).no_weight_decay() == set()


# ---------------------------------------------------------------------------------------------
# Config -> model
# ---------------------------------------------------------------------------------------------
def _cfg(*opts):
    cfg = get_cfg()
    merge_opts(cfg, ["DATA.NUM_FRAMES", 4, "DATA.IMG_SIZE", 32, "MODEL.NUM_CLASSES", 5,
                     "MODEL.FOCAL.EMBED_DIM", 8, "MODEL.FOCAL.DEPTHS", [1, 1, 1, 1], *opts])
    validate_cfg(cfg)
    return cfg


def test_build_model_honours_every_size_key(caplog):
    cfg = _cfg("MODEL.TYPE", "video_focalnet_small", "MODEL.TUBELET_SIZE", 2,
               "MODEL.FOCAL.FOCAL_LEVELS", [1, 2, 3, 1], "MODEL.FOCAL.MLP_RATIO", 2.0,
               "MODEL.FOCAL.ST_DESIGN", "joint", "MODEL.DROP_PATH_RATE", 0.3,
               "TRAIN.USE_CHECKPOINT", True, "MODEL.FOCAL.USE_LAYERSCALE", True,
               "MODEL.FOCAL.LAYERSCALE_VALUE", 0.5)
    with caplog.at_level(logging.WARNING):
        model = build_model(cfg)
    notices = [r for r in caplog.records if "MODEL.FOCAL has EMBED_DIM" in r.getMessage()]
    assert len(notices) == 1
    assert model.embed_dims == [8, 16, 32, 64] and model.tubelet_size == 2
    assert model.st_design == "joint" and model.layers[0].grad_checkpointing
    assert model.layers[0].blocks[0].mlp.fc1.out_features == 16
    assert len(model.layers[2].blocks[0].modulation.focal_layers) == 3
    assert model.layers[3].blocks[0].drop_path.drop_prob == pytest.approx(0.3)
    assert torch.all(model.layers[0].blocks[0].gamma_1 == 0.5)
    assert model.patch_embed.proj.weight.shape == (8, 3, 2, 4, 4)
    assert model(torch.randn(1, 4, 3, 32, 32)).shape == (1, 5)


def test_build_model_matching_variant_logs_nothing(caplog):
    cfg = get_cfg()
    merge_opts(cfg, ["MODEL.TYPE", "videofocalnet_base", "MODEL.FOCAL.EMBED_DIM", 128,
                     "MODEL.FOCAL.DEPTHS", [2, 2, 18, 2]])
    with caplog.at_level(logging.WARNING), torch.device("meta"):
        model = build_model(cfg)
    assert not [r for r in caplog.records if "MODEL.FOCAL has" in r.getMessage()]
    assert _num_params(model) == pytest.approx(157.39e6 + 600 * 1025, abs=6e3)


def test_custom_type_takes_sizes_from_the_config_silently(caplog):
    cfg = _cfg("MODEL.TYPE", "videofocalnet_custom")
    with caplog.at_level(logging.WARNING):
        model = build_model(cfg)
    assert not [r for r in caplog.records if "MODEL.FOCAL has" in r.getMessage()]
    assert model.embed_dims == [8, 16, 32, 64]
    assert [len(layer.blocks) for layer in model.layers] == [1, 1, 1, 1]


def test_bad_config_values_are_rejected():
    with pytest.raises(ConfigError, match="ST_DESIGN"):
        _cfg("MODEL.FOCAL.ST_DESIGN", "sideways")
    with pytest.raises(ConfigError, match="TUBELET_SIZE"):
        _cfg("MODEL.TUBELET_SIZE", 3)
    with pytest.raises(ValueError, match="not a Video-FocalNet"):
        variant_of("videofocalnet_huge")


# ---------------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[3]
OUR_CONFIGS = sorted((REPO / "configs" / "video_focalnet").rglob("*.yaml")) + sorted(
    (REPO / "configs" / "ablations" / "designs").glob("*.yaml"))
ABLATIONS = sorted((REPO / "configs" / "ablations").glob("vfn_*.yaml"))
RELEASED = {"kinetics400/tiny": (400, 49.55), "kinetics400/small": (400, 88.74),
            "kinetics400/base": (400, 157.39), "kinetics600/base": (600, 157.59),
            "ssv2/base": (174, 157.16), "diving48/base": (48, 157.03),
            "activitynet/base": (200, 157.18)}


def test_every_released_model_has_a_config():
    found = {str(p.relative_to(REPO / "configs" / "video_focalnet"))[:-5] for p in OUR_CONFIGS
             if "video_focalnet" in p.parts}
    assert set(RELEASED) <= found


@pytest.mark.parametrize("path", OUR_CONFIGS, ids=lambda p: "/".join(p.parts[-2:]))
def test_config_file_loads_and_builds(path):
    cfg = load_cfg(str(path), ["TRAIN.PRETRAINED_PATH", ""])
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.num_classes == cfg.MODEL.NUM_CLASSES == cfg.DATA.NUM_CLASSES
    assert model.st_design == cfg.MODEL.FOCAL.ST_DESIGN
    assert cfg.TEST.NUM_CLIP == 4 and cfg.TEST.NUM_CROP == 3 and cfg.DATA.NUM_FRAMES == 8
    assert len(datasets.class_names(cfg)) == cfg.MODEL.NUM_CLASSES
    key = "/".join(path.parts[-2:])[:-5]
    if key in RELEASED:
        classes, params_m = RELEASED[key]
        assert cfg.MODEL.NUM_CLASSES == classes
        assert _num_params(model) / 1e6 == pytest.approx(params_m, abs=0.006)
        assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and cfg.TRAIN.BASE_LR == 0.1
        assert cfg.TRAIN.WEIGHT_DECAY == 0.0  # what the reference effectively applied
        assert cfg.AUG.FLIP_RATIO == (0.0 if key.startswith("ssv2") else 0.5)


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.name)
def test_ablation_variants_build(path):
    from tools.workflows.ablation import load_ablation

    base = REPO / "configs" / "video_focalnet" / "kinetics400" / "tiny.yaml"
    variants = load_ablation(str(path), str(base), ["TRAIN.PRETRAINED_PATH", ""])
    assert len(variants) >= 3
    sizes = set()
    for variant in variants:
        cfg = load_cfg(str(base), ["TRAIN.PRETRAINED_PATH", "", *variant.opts_list()])
        for key, value in variant.opts.items():
            section, *rest = key.split(".")
            node = cfg[section]
            for part in rest:
                node = node[part]
            assert node == value or list(node) == value
        with torch.device("meta"):
            sizes.add(_num_params(build_model(cfg)))
    assert len(sizes) >= 3  # every ablation changes the model (the two sequential orders tie)


OFFICIAL = """DATA:
  ROOT: ''
  TRAIN_FILE: ''
  VAL_FILE: ''
  DATASET: {dataset}
  NUM_FRAMES: 8
  NUM_CLASSES: {classes}
  LABEL_LIST: 'labels/{labels}'
  BATCH_SIZE: 8
MODEL:
  TYPE: videofocalnet_{size}
  NAME: video-focalnet_{size}
  DROP_PATH_RATE: {drop_path}
  NUM_CLASSES: {classes}
  FOCAL:
    EMBED_DIM: {dim}
    DEPTHS: {depths}
    FOCAL_LEVELS: [2,2,2,2]
    FOCAL_WINDOWS: [3,3,3,3]
{smoothing}TRAIN:
  BASE_LR: 0.1
  WARMUP_LR: 0.001
  MIN_LR: 0.001
  EPOCHS: 120
  WEIGHT_DECAY: 1e-4
  OPTIMIZER:
    NAME: "sgd"
  WARMUP_EPOCHS: 20
  PRETRAINED_PATH: './pretrained/focalnet_{size}_srf.pth'
AUG:
  FRAME_INTERVAL: 4
  FLIP_RATIO: {flip}
  COLOR_JITTER: 0.8
  GRAY_SCALE: 0.2
  MIXUP: 0.8
  MIXUP_PROB: 0.5
SAVE_FREQ: 10
"""
OFFICIAL_FILES = [  # dataset, size, classes, labels file, drop path, flip
    ("kinetics400", "tiny", 400, "kinetics_400_labels.csv", 0.2, 0.5),
    ("kinetics400", "small", 400, "kinetics_400_labels.csv", 0.3, 0.5),
    ("kinetics400", "base", 400, "kinetics_400_labels.csv", 0.5, 0.5),
    ("kinetics600", "base", 600, "kinetics_600_labels.csv", 0.5, 0.5),
    ("ssv2", "base", 174, "ssv2_174_labels.csv", 0.5, 0.0),
    ("diving48", "base", 48, "diving_48_labels.csv", 0.5, 0.5),
    ("activitynet", "base", 200, "activitynet_200_labels.csv", 0.5, 0.5),
]


@pytest.mark.parametrize("dataset,size,classes,labels,drop_path,flip", OFFICIAL_FILES,
                         ids=[f"{d}-{s}" for d, s, *_ in OFFICIAL_FILES])
def test_official_config_files_load_unchanged(tmp_path, dataset, size, classes, labels,
                                              drop_path, flip):
    dim, depths = (96, "[2,2,6,2]") if size == "tiny" else (128 if size == "base" else 96,
                                                              "[2,2,18,2]")
    smoothing = "" if dataset == "diving48" else "  LABEL_SMOOTHING: 0.1\n"
    path = tmp_path / f"video-focalnet_{size}.yaml"
    path.write_text(OFFICIAL.format(dataset=dataset, classes=classes, labels=labels, size=size,
                                    drop_path=drop_path, dim=dim, depths=depths, flip=flip,
                                    smoothing=smoothing))
    cfg = load_cfg(str(path))
    assert cfg.MODEL.TYPE == f"videofocalnet_{size}" and cfg.DATA.DATASET == dataset
    assert cfg.MODEL.NUM_CLASSES == cfg.DATA.NUM_CLASSES == classes
    assert cfg.TRAIN.WEIGHT_DECAY == pytest.approx(1e-4) and cfg.TRAIN.OPTIMIZER.NAME == "sgd"
    assert cfg.MODEL.DROP_PATH_RATE == drop_path and cfg.AUG.FLIP_RATIO == flip
    assert cfg.TRAIN.PRETRAINED_PATH == f"./pretrained/focalnet_{size}_srf.pth"
    assert cfg.AUG.MIXUP_PROB == 0.5 and cfg.SAVE_FREQ == 10 and cfg.MODEL.LABEL_SMOOTHING == 0.1
    cfg.defrost()
    cfg.TRAIN.PRETRAINED_PATH = ""
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.embed_dims[0] == dim and model.num_classes == classes


# ---------------------------------------------------------------------------------------------
# The model family (what engine/registry.py hands to the engine)
# ---------------------------------------------------------------------------------------------
def test_family_adds_and_validates_model_focal():
    cfg = get_cfg()
    assert cfg.MODEL.FOCAL.ST_DESIGN == "parallel" and list(cfg.MODEL.FOCAL.DEPTHS) == [2, 2, 6, 2]
    FAMILY.validate(cfg)
    cfg.MODEL.FOCAL.ST_DESIGN = "paralel"
    with pytest.raises(ValueError, match=r"^key MODEL\.FOCAL\.ST_DESIGN: .*Did you mean 'parallel'"):
        FAMILY.validate(cfg)


def test_config_errors_name_the_file_key_and_fix(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MODEL:\n  FOCAL:\n    FOCAL_WINDOWS: [3, 4, 3, 3]\n")
    with pytest.raises(ConfigError) as err:
        load_cfg(str(path))
    assert str(err.value).startswith(f"{path}: key MODEL.FOCAL.FOCAL_WINDOWS: windows must be odd")
    with pytest.raises(ConfigError, match=r"^--opts: key MODEL.FOCAL.FOCAL_LEVELS: needs one value"):
        cfg = get_cfg()
        merge_opts(cfg, ["MODEL.FOCAL.FOCAL_LEVELS", "[2, 2]"])
        validate_cfg(cfg, source="--opts")


def test_family_build_checks_the_class_list():
    cfg = _cfg()
    assert FAMILY.build(cfg, ["a", "b", "c", "d", "e"]).num_classes == 5
    assert FAMILY.build(cfg, None).num_classes == 5
    with pytest.raises(ValueError, match=r"^key MODEL.NUM_CLASSES: .*class list has 3 names.*"
                                         r"set MODEL.NUM_CLASSES 3$"):
        FAMILY.build(cfg, ["a", "b", "c"])


def test_family_example_input_and_benchmark_models():
    cfg = _cfg()
    video = FAMILY.example_input(cfg, batch_size=3)
    assert video.shape == (3, 4, 3, 32, 32) and video.dtype == torch.float32
    torch.testing.assert_close(video, FAMILY.example_input(cfg, batch_size=3))  # seeded
    assert build_model(cfg)(video).shape == (3, 5)

    assert FAMILY.designs == DESIGNS
    torch.manual_seed(0)
    built = FAMILY.benchmark_models("video_focalnet_small", num_frames=2, img_size=32,
                                    num_classes=7, batch_size=2, design="joint",
                                    drop_path_rate=0.0)
    model, video = built["model"], built["input"]
    assert isinstance(model, VideoFocalNet) and model.st_design == "joint"
    assert [len(stage.blocks) for stage in model.layers] == [2, 2, 18, 2]
    assert video.shape == (2, 2, 3, 32, 32)
    with torch.no_grad():
        assert model(video).shape == (2, 7)
    with pytest.raises(KeyError, match="video_focalnet_tiny"):
        FAMILY.benchmark_models("video_focalnet_huge")


def test_compiles_as_one_graph():
    """torch.compile-friendly: dynamo captures the whole forward with no graph break."""
    model = VideoFocalNet(**SMALL).eval()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 4, 3, 32, 32))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
