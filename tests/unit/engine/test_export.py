"""Exported models (engine/export.py) under ONNX Runtime and OpenVINO (engine/runtime.py) give
PyTorch's logits and features within 1e-4: every Video-FocalNet design of the design space
(configs/ablations/designs plus the stem and block options) and Vita-CLIP (configs/vita_clip/
tiny.yaml, with its class text built in and with other labels' text), at tiny sizes on random
weights, for batches other than the one exported with. Skipped, with the reason, where the deploy
extra is not installed; scripts/test.sh installs it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnx", reason="the deploy extra is not installed (pip install '.[deploy]')")

from engine.build import build_model_without_init  # noqa: E402
from engine.config import load_cfg  # noqa: E402
from engine.export import export_model, sidecar_path  # noqa: E402
from engine.runtime import RuntimeModel  # noqa: E402
from tests.helpers.tiny import EXPORT_FOCAL_OPTS  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
TOLERANCE = 1e-4
# (design config, extra options): the five token mixers, then the stem and block options
FOCAL_DESIGNS = {
    "parallel": ("designs/parallel.yaml", []),
    "spatial": ("designs/spatial.yaml", []),
    "spatial_temporal": ("designs/spatial_temporal.yaml", []),
    "temporal_spatial": ("designs/temporal_spatial.yaml", []),
    "joint": ("designs/joint.yaml", []),
    "tubelet_2": ("designs/parallel.yaml", ["MODEL.TUBELET_SIZE", "2"]),
    "conv_embed_postln": ("designs/parallel.yaml",
                          ["MODEL.FOCAL.USE_CONV_EMBED", "True", "MODEL.FOCAL.USE_POSTLN",
                           "True", "MODEL.FOCAL.USE_LAYERSCALE", "True",
                           "MODEL.FOCAL.USE_POSTLN_IN_MODULATION", "True",
                           "MODEL.FOCAL.NORMALIZE_MODULATOR", "True"]),
}
RUNTIMES = ("onnxruntime", "openvino")


def _runtime_available(runtime: str) -> None:
    pytest.importorskip(runtime, reason=f"{runtime} is not installed (pip install '.[deploy]')")


def _exported(cfg, folder: Path, name: str):
    torch.manual_seed(0)
    model = build_model_without_init(cfg).eval()
    with torch.no_grad():  # non-trivial norms and layer scales: a wrong op would show
        for param_name, param in model.named_parameters():
            if param_name.endswith(("gamma_1", "gamma_2")) or ".norm" in param_name:
                param.add_(torch.randn_like(param) * 0.2)
    path = export_model(model, cfg, str(folder / f"{name}.pth"), "onnx", str(folder))
    return model, path


@pytest.fixture(scope="module")
def focal_exports(tmp_path_factory):
    """design -> (PyTorch model, exported .onnx), exported once for the module."""
    folder = tmp_path_factory.mktemp("focal_exports")
    cache = {}

    def get(design: str):
        if design not in cache:
            config, extra = FOCAL_DESIGNS[design]
            cfg = load_cfg(str(REPO / "configs" / "ablations" / config),
                           EXPORT_FOCAL_OPTS + extra)
            cache[design] = _exported(cfg, folder, design)
        return cache[design]
    return get


def _video(batch: int, cfg_frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn((batch, cfg_frames, 3, size, size),
                       generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("design", list(FOCAL_DESIGNS))
def test_every_focalnet_design_matches_eager(design, runtime, focal_exports):
    _runtime_available(runtime)
    model, onnx_file = focal_exports(design)
    model_file = onnx_file
    if runtime == "openvino":  # its own IR, converted from the ONNX file
        import openvino as ov
        model_file = onnx_file[:-len(".onnx")] + ".xml"
        ov.save_model(ov.convert_model(onnx_file), model_file, compress_to_fp16=False)
        Path(sidecar_path(model_file)).write_text(Path(sidecar_path(onnx_file)).read_text())
    exported = RuntimeModel(model_file, runtime)
    video = _video(3)  # exported with a batch of 2: the batch is dynamic
    with torch.no_grad():
        logits = model(video)
        features = model.forward_head(model.forward_features(video), pre_logits=True)
    got_logits, got_features = exported(video), exported.encode_video(video)
    assert got_logits.shape == logits.shape == (3, 10)
    assert got_features.shape == features.shape
    assert float((got_logits - logits).abs().max()) < TOLERANCE
    assert float((got_features - features).abs().max()) < TOLERANCE
    assert logits.std() > 1e-3  # the comparison is not between constants


def test_sidecar_describes_the_export(focal_exports):
    model, onnx_file = focal_exports("parallel")
    meta = json.loads(Path(sidecar_path(onnx_file)).read_text())
    assert meta["format"] == "onnx" and meta["file"] == Path(onnx_file).name
    assert meta["input"] == {"name": "video", "layout": "B,T,C,H,W", "dtype": "float32",
                             "batch": "dynamic", "frames": 4, "channels": 3, "height": 32,
                             "width": 32}
    assert meta["outputs"] == {"logits": [None, 10], "features": [None, 16]}
    assert len(meta["class_names"]) == 10 and meta["class_names"][0] == "moving left"
    assert meta["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["pipeline"]["DATA.NUM_FRAMES"] == 4 and meta["pipeline"]["TEST.NUM_CROP"] == 3
    assert meta["text"] is None and meta["model_type"] == "videofocalnet_custom"


def test_onnx_graph_has_no_negative_transpose(focal_exports):
    """The classic exporter wrote perm {0, -1, 1, 2} for the token convolutions, which ONNX
    Runtime refuses; the model code spells its dims non-negative."""
    import onnx
    for design in ("parallel", "joint"):
        graph = onnx.load(focal_exports(design)[1]).graph
        perms = [list(a.ints) for n in graph.node if n.op_type == "Transpose"
                 for a in n.attribute if a.name == "perm"]
        assert perms and all(min(p) >= 0 for p in perms)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_vita_clip_matches_eager_with_baked_and_other_text(runtime, tmp_path):
    _runtime_available(runtime)
    cfg = load_cfg(str(REPO / "configs" / "vita_clip" / "tiny.yaml"),
                   ["DATA.NUM_CLASSES", "10", "MODEL.NUM_CLASSES", "10"])
    model, onnx_file = _exported(cfg, tmp_path, "vita")
    model_file = onnx_file
    if runtime == "openvino":
        model_file = export_model(model, cfg, str(tmp_path / "vita.pth"), "openvino",
                                  str(tmp_path))
    exported = RuntimeModel(model_file, runtime)
    video = _video(3, 4, 48)
    with torch.no_grad():
        logits = model(video)
        features = model.encode_video(video)
        other = model.encode_text(["walking a dog", "juggling", "cooking"])
        other_logits = model(video, text_features=other)
    assert float((exported(video) - logits).abs().max()) < TOLERANCE
    assert float((exported.encode_video(video) - features).abs().max()) < TOLERANCE
    got_other = exported(video, text_features=other)
    assert got_other.shape == (3, 3)
    assert float((got_other - other_logits).abs().max()) < TOLERANCE
    assert logits.std() > 1e-3



@pytest.mark.parametrize("config", ["video_focalnet/kinetics400/tiny.yaml", "vita_clip/tiny.yaml"])
def test_exported_config_reproduces_the_evaluation_pipeline(config):
    """The JSON's pipeline settings give back the config's evaluation pipeline (the family's
    official values included), so an exported file runs without its YAML."""
    from engine.export import pipeline_settings
    from engine.runtime import exported_cfg
    cfg = load_cfg(str(REPO / "configs" / config), ["TEST.NUM_CLIP", "2"])
    names = [f"class {i}" for i in range(cfg.MODEL.NUM_CLASSES)]
    meta = json.loads(json.dumps({"pipeline": pipeline_settings(cfg), "class_names": names,
                                  "model_type": cfg.MODEL.TYPE}))  # through JSON, as on disk
    rebuilt = exported_cfg(meta)
    assert pipeline_settings(rebuilt) == pipeline_settings(cfg)
    assert rebuilt.MODEL.TYPE == cfg.MODEL.TYPE and rebuilt.TEST.NUM_CLIP == 2
    assert exported_cfg(meta, ["TEST.NUM_CROP", "1"]).TEST.NUM_CROP == 1


@pytest.mark.slow
def test_dynamo_exporter_matches_eager(tmp_path):
    """--exporter dynamo (torch.export + onnxscript) gives the same model as the classic one."""
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install '.[deploy]')")
    _runtime_available("onnxruntime")
    cfg = load_cfg(str(REPO / "configs" / "ablations" / "designs" / "parallel.yaml"),
                   EXPORT_FOCAL_OPTS)
    torch.manual_seed(0)
    model = build_model_without_init(cfg).eval()
    path = export_model(model, cfg, str(tmp_path / "m.pth"), "onnx", str(tmp_path),
                        exporter="dynamo")
    assert "dynamo=True" in json.loads(Path(sidecar_path(path)).read_text())["exporter"]
    video = _video(3)
    with torch.no_grad():
        logits = model(video)
    assert float((RuntimeModel(path, "onnxruntime")(video) - logits).abs().max()) < TOLERANCE
