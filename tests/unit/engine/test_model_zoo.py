"""The model zoo (engine/zoo.py, engine/download.py, tools/download_weights.py): weights by name.

A local HTTP server (a thread on 127.0.0.1) stands in for every source: it serves generated files
in each registry format (official Video-FocalNet training checkpoint with its pickled yacs config,
microsoft FocalNet, timm FocalNet, an OpenAI-style TorchScript CLIP written by torch itself, a
Vita-CLIP training checkpoint), reached through VIDEO_WEIGHTS_MIRROR; it can cut a response
half-way and play Google Drive's large-file confirmation page. No test leaves this machine: every
URL that the downloader opens is checked to be on the loopback address.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import urllib.parse
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from yacs.config import CfgNode

from engine import download, zoo
from engine.build import build_model
from engine.config import load_cfg
from tests.helpers.weights_server import WeightsServer

REPO = Path(__file__).resolve().parents[3]
FOCAL_SIZES = dict(img_size=32, embed_dim=8, depths=(1, 1, 2, 1), num_frames=4)
FOCAL_OPTS = ["DATA.NUM_FRAMES", 4, "DATA.IMG_SIZE", 32, "MODEL.FOCAL.EMBED_DIM", 8,
              "MODEL.FOCAL.DEPTHS", [1, 1, 2, 1]]
# A Vita-CLIP the size of the tiny open_clip model below (so the archive loads into it).
VITA_OPTS = ["DATA.IMG_SIZE", 32, "DATA.NUM_FRAMES", 2, "MODEL.VITA.FEATURE_DIM", 32,
             "MODEL.VITA.NUM_HEADS", 2, "MODEL.VITA.MLP_FACTOR", 2.0, "MODEL.VITA.EMBED_DIM", 16,
             "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", 16, "MODEL.VITA.TEXT_TRANSFORMER_HEADS", 2]
TINY_CLIP = {"embed_dim": 16, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 16,
                            "head_width": 16, "mlp_ratio": 2.0},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2,
                          "layers": 2}}


# ---------------------------------------------------------------------------------------------
# The local server (tests/helpers/weights_server.py)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    srv = WeightsServer()
    yield srv
    srv.close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    """An empty cache, the server as mirror, no back-off sleeps, loopback-only downloads."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIDEO_WEIGHTS_DIR", str(cache))
    monkeypatch.setenv("VIDEO_WEIGHTS_MIRROR", server.url + "/mirror")
    monkeypatch.delenv("VIDEO_WEIGHTS_OFFLINE", raising=False)
    monkeypatch.setattr(download, "_BACKOFF_SCALE", 0.0)
    real_open = download._open

    def loopback_only(url, offset, timeout):
        assert urllib.parse.urlparse(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real_open(url, offset, timeout)
    monkeypatch.setattr(download, "_open", loopback_only)
    # test-only entries and patched hashes vanish after each test
    monkeypatch.setattr(zoo, "_ENTRIES", dict(zoo.entries()))
    server.requests.clear()
    server.cut.clear()
    return cache


def _serve(server, file_name: str, data: bytes) -> None:
    server.files[f"/mirror/{file_name}"] = data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _saved(obj, path: Path = None) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _test_entry(name: str, url: str, **kw) -> zoo.Weights:
    fields = dict(name=name, file_name=f"{name}.bin", urls=(url,), what="test file", key="test")
    fields.update(kw)
    return zoo.register_weights(zoo.Weights(**fields))


# ---------------------------------------------------------------------------------------------
# Files in each registry format (tiny networks)
# ---------------------------------------------------------------------------------------------
def _perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> bytes of each generated file, plus the networks they came from."""
    import open_clip
    from open_clip import factory
    from timm.models.focalnet import FocalNet
    from safetensors.torch import save as safetensors_bytes
    from video_focalnet import VideoFocalNet

    def official(model):  # the layout of the released training checkpoints
        return _saved({"model": model.state_dict(), "epoch": 29, "max_accuracy": 79.8,
                       "config": CfgNode({"MODEL": CfgNode({"TYPE": "videofocalnet_tiny"}),
                                          "DATA": CfgNode({"NUM_FRAMES": 8})}),
                       "optimizer": {"state": {}, "param_groups": []}, "lr_scheduler": {}})

    torch.manual_seed(0)
    video = _perturbed(VideoFocalNet(**FOCAL_SIZES, num_classes=10)).eval()
    video_k400 = _perturbed(VideoFocalNet(**FOCAL_SIZES, num_classes=400)).eval()
    microsoft = _perturbed(VideoFocalNet(**FOCAL_SIZES, num_classes=1000, st_design="spatial"))
    timm_2d = _perturbed(FocalNet(embed_dim=8, depths=(1, 1, 2, 1), num_classes=10)).eval()
    factory._MODEL_CONFIGS.setdefault("tiny-test-quickgelu", TINY_CLIP)
    clip = open_clip.create_model("tiny-test-quickgelu").eval()
    folder = tmp_path_factory.mktemp("archives")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, and still what OpenAI used
        torch.jit.save(torch.jit.script(clip), str(folder / "scripted.pt"))
        traced = torch.jit.trace(clip, (torch.zeros(1, 3, 32, 32),
                                        torch.zeros(1, 77, dtype=torch.long)), check_trace=False)
        torch.jit.save(traced, str(folder / "traced.pt"))
    return {
        "video": video, "video_k400": video_k400, "microsoft": microsoft, "timm_2d": timm_2d,
        "clip": clip, "video_focalnet_tiny_k400.pth": official(video),
        "400 classes/video_focalnet_tiny_k400.pth": official(video_k400),
        "focalnet_tiny_srf.pth": _saved({"model": microsoft.state_dict(), "epoch": 300}),
        "focalnet_tiny_srf.ms_in1k.safetensors": safetensors_bytes(timm_2d.state_dict()),
        "scripted.pt": (folder / "scripted.pt").read_bytes(),
        "traced.pt": (folder / "traced.pt").read_bytes(),
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A tiny generated video set (10 classes, 2 test videos) for tools/test.py."""
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    root = tmp_path_factory.mktemp("syn") / "syn"
    ensure_synthetic(str(root), synthetic_settings(4, 2, 4, 32, 0))
    return root


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
def test_registry_lists_every_published_file_with_its_use():
    import video_focalnet.pretrained as vfn_pretrained

    published = {"video_focalnet_tiny_k400": "79.8", "video_focalnet_small_k400": "81.4",
                 "video_focalnet_base_k400": "83.6", "video_focalnet_base_k600": "86.7",
                 "video_focalnet_base_ssv2": "71.1", "video_focalnet_base_diving48": "90.8",
                 "video_focalnet_base_activitynet": "89.8"}
    for name, top1 in published.items():
        entry = zoo.get(name)
        assert entry.top1 == top1 and entry.key == "--checkpoint"
        assert entry.urls[0].startswith("https://drive.google.com/uc?export=download&id=")
    for size in ("tiny", "small", "base"):
        assert zoo.get(f"focalnet_{size}_srf").urls == (
            f"https://github.com/microsoft/FocalNet/releases/download/v1.0.0/"
            f"focalnet_{size}_srf.pth",)
        assert "huggingface.co/timm/" in zoo.get(f"focalnet_{size}_srf.ms_in1k").urls[0]
    openai = zoo.get("openai:ViT-B/16")
    assert openai.name == "openai_clip_vit_b16" and openai.file_name == "ViT-B-16.pt"
    assert openai.sha256 == openai.urls[0].split("/")[-2]  # OpenAI's path segment is the hash
    assert zoo.get("vita_clip_b16_k400").key == "--checkpoint"
    assert zoo.get("vita_clip_backbone").file_name == "clip_pretrained.pth"
    for entry in zoo.entries().values():
        assert entry.configs and all((REPO / c).is_file() for c in entry.configs), entry.name
        assert entry.key in ("--checkpoint", "TRAIN.PRETRAINED_PATH", "MODEL.VITA.BACKBONE_PATH")
    assert len({e.file_name for e in zoo.entries().values()}) == len(zoo.entries())
    # each package's declared files are the zoo's, and its timm tags point at them
    import vita_clip.pretrained as vita_pretrained
    declared = vfn_pretrained.RELEASED_WEIGHTS + vita_pretrained.RELEASED_WEIGHTS
    assert [e.name for e in declared] == list(zoo.entries())
    tags = [e for e in declared if e.timm_name]
    assert [e.name for e in tags] == list(published)
    cfgs = vfn_pretrained.released_cfgs(dict)
    for entry in tags:
        assert cfgs[entry.timm_name] == {"url": f"zoo:{entry.name}",
                                         "num_classes": entry.num_classes}
        assert entry.file_name == f"{entry.name}.pth"
    assert [e.num_classes for e in tags] == [400, 400, 400, 600, 174, 48, 200]
    with pytest.raises(KeyError, match="did you mean video_focalnet_tiny_k400"):
        zoo.get("video_focalnet_tiny_k40")


def test_a_weight_declared_by_a_family_is_served_by_name(env, server, monkeypatch):
    """Adding a released file is one entry in its model package: a family's released_weights."""
    from engine import registry

    class ToyFamily:
        name, model_types = "toy_weights", ("toy_weights",)
        released_weights = (zoo.Weights(
            name="toy_weights_k400", file_name="toy_weights_k400.pth",
            urls=(server.url + "/files/toy_weights_k400.pth",), what="a toy network",
            key="--checkpoint"),)

        def add_config(self, cfg): pass
        def validate(self, cfg): pass
        def build(self, cfg, class_names=None): raise NotImplementedError
        def normalization(self, cfg): return (0.5,) * 3, (0.5,) * 3
        def input_pipeline(self, cfg): return {}
        def example_input(self, cfg, batch_size=1): return torch.zeros(batch_size, 1, 3, 8, 8)

    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(registry, "_BY_TYPE", dict(registry._BY_TYPE))
    monkeypatch.setattr(zoo, "_FAMILIES_READ", set(zoo._FAMILIES_READ))
    assert zoo.lookup("toy_weights_k400") is None
    registry.register_model_family(ToyFamily())
    assert zoo.get("toy_weights_k400").what == "a toy network"
    server.files["/files/toy_weights_k400.pth"] = b"toy weights"
    path = zoo.fetch("toy_weights_k400", progress=False)
    assert path == str(env / "toy_weights_k400.pth") and Path(path).read_bytes() == b"toy weights"
    assert "`toy_weights_k400`" in zoo.zoo_markdown()


def test_docs_table_is_the_generated_one(capsys):
    import tools.download_weights as tool

    assert tool.main(["--markdown"]) == 0
    table = capsys.readouterr().out
    assert table == zoo.zoo_markdown() and table.count("\n") == len(zoo.entries()) + 2
    docs = (REPO / "docs" / "model_zoo.md").read_text(encoding="utf-8")
    start, end = "<!-- zoo table: generated -->\n", "<!-- end of zoo table -->"
    assert docs[docs.index(start) + len(start):docs.index(end)] == table, \
        "docs/model_zoo.md is stale: paste `python tools/download_weights.py --markdown` into it"


# ---------------------------------------------------------------------------------------------
# Names where paths go
# ---------------------------------------------------------------------------------------------
def _focal_cfg(*opts):
    return load_cfg(str(REPO / "configs/video_focalnet/kinetics400/tiny.yaml"),
                    [*FOCAL_OPTS, "MODEL.NUM_CLASSES", 6, "DATA.DATASET", "csv", "DATA.LABEL_LIST", "",
                     *opts])


def test_pretrained_path_by_name_downloads_once_and_records_the_sha256(env, server, files):
    data = files["focalnet_tiny_srf.pth"]
    _serve(server, "focalnet_tiny_srf.pth", data)
    model = build_model(_focal_cfg("TRAIN.PRETRAINED_PATH", "focalnet_tiny_srf"))
    source = files["microsoft"].state_dict()
    torch.testing.assert_close(model.state_dict()["layers.2.blocks.1.mlp.fc1.weight"],
                               source["layers.2.blocks.1.mlp.fc1.weight"])
    path = env / "focalnet_tiny_srf.pth"
    assert path.read_bytes() == data and not (env / "focalnet_tiny_srf.pth.part").exists()
    assert (env / "focalnet_tiny_srf.pth.sha256").read_text() == \
        f"{_sha(data)}  focalnet_tiny_srf.pth\n"
    assert server.paths() == ["/mirror/focalnet_tiny_srf.pth"]
    # the released configs' path (which does not exist here) finds the same zoo file, cached
    cfg = _focal_cfg()
    assert cfg.TRAIN.PRETRAINED_PATH.endswith("pretrained/focalnet_tiny_srf.pth")
    again = build_model(cfg)
    torch.testing.assert_close(again.state_dict()["layers.0.blocks.0.modulation.f.weight"],
                               source["layers.0.blocks.0.modulation.f.weight"])
    assert len(server.requests) == 1
    # a real path always wins over the zoo
    own = env.parent / "focalnet_tiny_srf.pth"
    torch.save({"model": {k: v + 1 for k, v in source.items()}}, own)
    mine = build_model(_focal_cfg("TRAIN.PRETRAINED_PATH", str(own)))
    torch.testing.assert_close(mine.state_dict()["layers.0.blocks.0.modulation.f.weight"],
                               source["layers.0.blocks.0.modulation.f.weight"] + 1)


def test_timm_format_name_initialises_from_safetensors(env, server, files):
    _serve(server, "focalnet_tiny_srf.ms_in1k.safetensors",
           files["focalnet_tiny_srf.ms_in1k.safetensors"])
    model = build_model(_focal_cfg("TRAIN.PRETRAINED_PATH", "focalnet_tiny_srf.ms_in1k"))
    timm_state = files["timm_2d"].state_dict()
    torch.testing.assert_close(model.state_dict()["layers.0.blocks.0.mlp.fc1.weight"],
                               timm_state["layers.0.blocks.0.mlp.fc1.weight"].flatten(1))


def test_unknown_name_is_one_clear_error(env):
    from engine.zoo import WeightsUnavailable
    with pytest.raises(WeightsUnavailable, match=r"key TRAIN.PRETRAINED_PATH: 'focalnet_tiny' is "
                                                 r"neither an existing file nor a model-zoo "
                                                 r"name; did you mean focalnet_tiny_srf"):
        build_model(_focal_cfg("TRAIN.PRETRAINED_PATH", "focalnet_tiny"))


def _vita_cfg(names: Path, *opts):
    names.write_text("archery\nplaying guitar\njuggling balls\n")
    return load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"),
                    [*VITA_OPTS, "DATA.LABEL_LIST", str(names), "MODEL.NUM_CLASSES", "3",
                     "OUTPUT", str(names.parent / "o"), *opts])


def test_backbone_path_openai_name_reads_a_torch_written_archive(env, server, files, tmp_path):
    data = files["scripted.pt"]
    # the real entry's hash is OpenAI's; this stand-in archive gets its own published hash
    openai = zoo.get("openai_clip_vit_b16")
    zoo.register_weights(dataclasses.replace(openai, sha256=_sha(data)))
    _serve(server, "ViT-B-16.pt", data)
    model = build_model(_vita_cfg(tmp_path / "names.txt",
                                  "MODEL.VITA.BACKBONE_PATH", "openai:ViT-B/16"))
    clip = files["clip"].state_dict()
    params = dict(model.named_parameters())
    torch.testing.assert_close(params["visual.blocks.1.attn.k_proj.weight"],
                               clip["visual.transformer.resblocks.1.attn.in_proj_weight"][32:64])
    torch.testing.assert_close(params["textual.ln_final.weight"], clip["ln_final.weight"])
    assert (env / "ViT-B-16.pt").read_bytes() == data
    assert not (env / "ViT-B-16.pt.sha256").exists()  # a published hash needs no record


@pytest.mark.parametrize("kind", ["scripted", "traced"])
def test_torchscript_archives_are_read_without_running_code(kind, files, tmp_path, monkeypatch):
    """Archives the installed torch writes (tests/unit/vita_clip/test_vita_clip_io.py has the hand-made one)."""
    from vita_clip.weights import read_torchscript_state_dict
    expected = files["clip"].state_dict()
    (tmp_path / "a.pt").write_bytes(files[f"{kind}.pt"])
    pickles = [n for n in zipfile.ZipFile(tmp_path / "a.pt").namelist() if n.endswith("data.pkl")]
    if kind == "scripted":  # the typed-list helper that used to be refused is really there
        assert b"build_intlist" in zipfile.ZipFile(tmp_path / "a.pt").read(pickles[0])

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load runs archive code and must not be called")
    monkeypatch.setattr(torch.jit, "load", forbidden)
    tensors = read_torchscript_state_dict(str(tmp_path / "a.pt"))
    for key, value in expected.items():
        assert torch.equal(tensors[key], value), key
    assert set(tensors) - set(expected) <= {"attn_mask", "transformer.attn_mask"}


def _evaluate(tool_args, capsys):
    import tools.test as test_tool
    code = test_tool.main(tool_args)
    return code, capsys.readouterr()


def _synthetic_eval_opts(synthetic) -> list[str]:
    """--opts that evaluate the tiny Video-FocalNet checkpoint (FOCAL_OPTS) on the synthetic
    set at ``synthetic``: 2 videos, one view each."""
    return [str(v) for v in (
        *FOCAL_OPTS, "MODEL.NUM_CLASSES", 10, "DATA.DATASET", "synthetic", "DATA.ROOT",
        synthetic, "DATA.LABEL_LIST", "", "DATA.NUM_WORKERS", 0, "DATA.INPUT_SIZE", 32,
        "TEST.NUM_CLIP", 1, "TEST.NUM_CROP", 1, "TEST.BATCH_SIZE", 2,
        "DATA.SYNTHETIC.NUM_TRAIN", 4, "DATA.SYNTHETIC.NUM_VAL", 2,
        "DATA.SYNTHETIC.NUM_FRAMES", 4, "DATA.SYNTHETIC.SIZE", 32)]


def test_checkpoint_name_evaluates_official_video_focalnet(env, server, files, synthetic,
                                                           tmp_path, capsys):
    _serve(server, "video_focalnet_tiny_k400.pth", files["video_focalnet_tiny_k400.pth"])
    out = tmp_path / "eval"
    code, printed = _evaluate(["--checkpoint", "video_focalnet_tiny_k400", "--output", str(out),
                               "--opts", *_synthetic_eval_opts(synthetic)], capsys)
    assert code == 0, printed.err[-2000:]
    result = json.loads((out / "eval_results.json").read_text())
    assert result["num_videos"] == 2
    assert result["checkpoint"] == str(env / "video_focalnet_tiny_k400.pth")


def test_checkpoint_name_evaluates_a_vita_clip_training_checkpoint(env, server, synthetic,
                                                                   tmp_path, capsys):
    opts = [*VITA_OPTS, "DATA.NUM_FRAMES", 4, "DATA.DATASET", "synthetic", "DATA.ROOT",
            synthetic, "DATA.LABEL_LIST", synthetic / "classes.txt", "DATA.NUM_WORKERS", 0,
            "DATA.INPUT_SIZE", 32, "MODEL.NUM_CLASSES", 10,
            "TEST.NUM_CLIP", 1, "TEST.NUM_CROP", 1, "TEST.BATCH_SIZE", 2,
            "DATA.SYNTHETIC.NUM_TRAIN", 4, "DATA.SYNTHETIC.NUM_VAL", 2,
            "DATA.SYNTHETIC.NUM_FRAMES", 4, "DATA.SYNTHETIC.SIZE", 32]
    opts = [str(v) for v in opts]
    torch.manual_seed(0)
    model = build_model(load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"), opts))
    released = {"model": {f"module.{k}": v for k, v in model.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": []}, "lr_sched": {},
                "loss_scaler": {}, "next_step": 30000}
    data = _saved(released)
    _serve(server, "vita_clip_b16_k400.pth", data)
    out = tmp_path / "eval"
    code, printed = _evaluate(["--cfg", str(REPO / "configs/vita_clip/tiny.yaml"),
                               "--checkpoint", "vita_clip_b16_k400", "--output", str(out),
                               "--opts", *opts], capsys)
    assert code == 0, printed.err[-2000:]
    assert json.loads((out / "eval_results.json").read_text())["num_videos"] == 2
    assert (env / "vita_clip_b16_k400.pth").read_bytes() == data


def test_timm_create_model_pretrained_loads_the_released_checkpoint(env, server, files,
                                                                     monkeypatch):
    import timm

    _serve(server, "video_focalnet_tiny_k400.pth",
           files["400 classes/video_focalnet_tiny_k400.pth"])
    sizes = dict(img_size=32, embed_dim=8, depths=(1, 1, 2, 1), num_frames=4)
    # the model package never downloads, whatever was imported (engine.zoo is): it reads the
    # zoo's cache and names the download command
    with pytest.raises(FileNotFoundError, match=r"tools/download_weights.py "
                                                r"video_focalnet_tiny_k400"):
        timm.create_model("video_focalnet_tiny", pretrained=True, **sizes)
    assert server.requests == []
    zoo.fetch("video_focalnet_tiny_k400")
    model = timm.create_model("video_focalnet_tiny", pretrained=True, **sizes).eval()
    assert model.num_classes == 400  # from the tag's pretrained config
    expected = files["video_k400"].state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert model.pretrained_cfg["tag"] == "k400" and "state_dict" not in model.pretrained_cfg
    assert model.pretrained_cfg["file"] == str(env / "video_focalnet_tiny_k400.pth")
    # another head size: timm drops the released head and keeps the rest
    five = timm.create_model("video_focalnet_tiny.k400", pretrained=True,
                             **{**sizes, "num_classes": 5})
    assert five.head.weight.shape == (5, 64)
    assert torch.equal(five.state_dict()["layers.1.blocks.0.mlp.fc2.weight"],
                       expected["layers.1.blocks.0.mlp.fc2.weight"])
    monkeypatch.setenv("VIDEO_WEIGHTS_DIR", str(env.parent / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=r"tools/download_weights.py "
                                                r"video_focalnet_tiny_k400"):
        timm.create_model("video_focalnet_tiny", pretrained=True, **sizes)
    assert "video_focalnet_base.ssv2" in timm.list_pretrained("video_focalnet_base*")


# ---------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------
def test_cut_connection_is_resumed_byte_identical(env, server, monkeypatch):
    data = os.urandom(3 * download.CHUNK + 12345)
    entry = _test_entry("cut_file", server.url + "/files/cut.bin")
    monkeypatch.delenv("VIDEO_WEIGHTS_MIRROR")
    server.files["/files/cut.bin"] = data
    half = len(data) // 2
    server.cut["/files/cut.bin"] = half
    path = zoo.fetch(entry.name, progress=False)
    assert Path(path).read_bytes() == data
    assert server.requests == [("/files/cut.bin", None), ("/files/cut.bin", f"bytes={half}-")]
    # cut again with no resumption left in this run: the part file waits for the next run
    os.remove(path)
    os.remove(path + ".sha256")
    server.requests.clear()
    server.cut["/files/cut.bin"] = half
    with pytest.raises(download.DownloadError, match="run again to resume"):
        download.fetch_url(server.url + "/files/cut.bin", path, retries=0, progress=False)
    assert os.path.getsize(path + download.PART_SUFFIX) == half and not os.path.exists(path)
    download.fetch_url(server.url + "/files/cut.bin", path, retries=0, progress=False)
    assert Path(path).read_bytes() == data and server.requests[-1][1] == f"bytes={half}-"


def test_checksum_mismatch_moves_the_file_aside_and_says_so(env, server, monkeypatch, caplog):
    good, bad = b"the published bytes" * 100, b"something else" * 100
    entry = _test_entry("hashed_file", server.url + "/files/hashed.bin", sha256=_sha(good))
    monkeypatch.delenv("VIDEO_WEIGHTS_MIRROR")
    server.files["/files/hashed.bin"] = bad
    with pytest.raises(zoo.WeightsUnavailable) as err:
        zoo.fetch(entry.name, progress=False)
    message = str(err.value)
    aside = f"hashed_file.bin.part.mismatch-{_sha(bad)[:16]}"
    assert "checksum mismatch" in message and f"the file is kept as {env / aside}" in message
    assert _sha(bad) in message and _sha(good) in message
    assert sorted(os.listdir(env)) == sorted(["hashed_file.bin.lock", aside])
    assert (env / aside).read_bytes() == bad
    # a cached file that went bad since its first (recorded) download is moved aside (kept,
    # named) and fetched again
    unhashed = _test_entry("recorded_file", server.url + "/files/recorded.bin")
    server.files["/files/recorded.bin"] = good
    path = Path(zoo.fetch(unhashed.name, progress=False))
    path.write_bytes(bad)
    with caplog.at_level(logging.WARNING, logger="engine.zoo"):
        assert zoo.fetch(unhashed.name, progress=False) == str(path)
    kept = Path(f"{path}.mismatch-{_sha(bad)[:16]}")
    assert path.read_bytes() == good and kept.read_bytes() == bad
    assert f"moved aside to {kept}" in caplog.text and _sha(bad) in caplog.text
    # ... and if the source now serves other bytes than first recorded, that is refused too,
    # and the message names where the cached copy went
    kept.unlink()
    path.write_bytes(bad)
    server.files["/files/recorded.bin"] = bad
    with pytest.raises(zoo.WeightsUnavailable, match="recorded at the first download") as err:
        zoo.fetch(unhashed.name, progress=False)
    assert not path.exists() and kept.read_bytes() == bad and str(kept) in str(err.value)


def test_a_malformed_checksum_record_counts_as_absent(env, server, monkeypatch):
    """Offline, a cached file with a broken .sha256 record is used (and the record rewritten),
    never deleted."""
    data = b"good cached weights" * 50
    entry = _test_entry("cached_only", server.url + "/files/cached_only.bin")
    monkeypatch.setenv("VIDEO_WEIGHTS_OFFLINE", "1")
    env.mkdir(parents=True, exist_ok=True)
    path = env / "cached_only.bin"
    asked = len(server.requests)
    for record in ("not a checksum\n", "", "\xff\xfe garbage", "abc123  cached_only.bin\n"):
        path.write_bytes(data)
        Path(f"{path}.sha256").write_text(record, encoding="latin-1")
        assert zoo.fetch(entry.name, progress=False) == str(path)
        assert path.read_bytes() == data
        assert Path(f"{path}.sha256").read_text().split()[0] == _sha(data)
    assert len(server.requests) == asked


def test_google_drive_confirmation_page_is_followed(env, server, monkeypatch):
    data = os.urandom(50_000)
    server.drive["1AbC-d_E"] = data
    entry = _test_entry("drive_file", server.url + "/uc?export=download&id=1AbC-d_E")
    monkeypatch.delenv("VIDEO_WEIGHTS_MIRROR")
    assert Path(zoo.fetch(entry.name, progress=False)).read_bytes() == data
    assert [p for p, _ in server.requests] == [
        "/uc?export=download&id=1AbC-d_E",
        "/download?id=1AbC-d_E&export=download&confirm=t&uuid=u-1"]
    # a page that is not Drive's (a sign-in page, an expired link) is an error, not a file
    server.pages["/signin"] = "<html><body><a href='/login'>Sign in</a></body></html>"
    with pytest.raises(download.DownloadError, match="web page instead of the file"):
        download.fetch_url(server.url + "/signin", str(env / "page"), progress=False)
    assert not os.path.exists(env / "page")


def test_mirror_may_be_a_local_folder(env, server, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = b"weights from a shared folder"
    (mirror / "vita_clip_backbone_test.bin").write_bytes(data)
    entry = _test_entry("vita_clip_backbone_test", server.url + "/files/never-asked.bin")
    for value in (str(mirror), f"file://{mirror}"):
        monkeypatch.setenv("VIDEO_WEIGHTS_MIRROR", value)
        path = Path(zoo.fetch(entry.name, progress=False))
        assert path.read_bytes() == data and path.parent == env
        path.unlink()
    assert server.requests == []
    # a mirror without the file falls through to the published source
    (mirror / "vita_clip_backbone_test.bin").unlink()
    server.files["/files/never-asked.bin"] = data
    assert Path(zoo.fetch(entry.name, progress=False)).read_bytes() == data


def test_offline_with_nothing_cached_is_one_message_and_exit_code_2(env, server, monkeypatch,
                                                                      capsys):
    import tools.download_weights as tool
    import tools.test as test_tool

    monkeypatch.setenv("VIDEO_WEIGHTS_OFFLINE", "1")
    assert tool.main(["video_focalnet_tiny_k400", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot get the weights 'video_focalnet_tiny_k400'")
    assert "https://drive.google.com/uc?export=download&id=1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP" in err
    assert str(env / "video_focalnet_tiny_k400.pth") in err and "sha256" in err
    assert "VIDEO_WEIGHTS_MIRROR" in err and server.requests == []
    # the same through the evaluation tool, and with a source that refuses connections
    monkeypatch.delenv("VIDEO_WEIGHTS_OFFLINE")
    monkeypatch.delenv("VIDEO_WEIGHTS_MIRROR")
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    _test_entry("gone_file", f"http://127.0.0.1:{closed_port}/gone.pth", key="--checkpoint",
                configs=("configs/video_focalnet/kinetics400/tiny.yaml",))
    assert test_tool.main(["--checkpoint", "gone_file"]) == 2
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{closed_port}/gone.pth: cannot connect" in err
    assert "key --checkpoint" in err and "gone_file.bin" in err
    assert not any(env.glob("*.part"))
    assert tool.main(["no_such_weights"]) == 2
    assert "is not a model-zoo name" in capsys.readouterr().err


def test_list_shows_what_is_cached(env, server, capsys):
    import tools.download_weights as tool
    _serve(server, "focalnet_tiny_srf.pth", b"0" * (3 << 20))
    assert tool.main(["focalnet_tiny_srf", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(env / "focalnet_tiny_srf.pth")
    assert tool.main(["--list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert rows["focalnet_tiny_srf"].endswith("3 MiB  yes")
    assert rows["video_focalnet_tiny_k400"].split()[-2:] == ["?", "no"]


def test_readme_zoo_command_works_offline_with_only_the_checkpoint_cached(
        env, server, files, synthetic, tmp_path, capsys, monkeypatch):
    """`tools/test.py --checkpoint video_focalnet_tiny_k400 --opts DATA.ROOT ...` with the
    checkpoint cached and nothing else: the released config's TRAIN.PRETRAINED_PATH
    (focalnet_tiny_srf) is neither resolved nor fetched, nothing is asked of the network, and
    the results go to $VIDEO_EVAL_DIR/<name>, not into the current folder."""
    monkeypatch.setenv("VIDEO_WEIGHTS_OFFLINE", "1")
    monkeypatch.delenv("VIDEO_WEIGHTS_MIRROR")
    monkeypatch.setenv("VIDEO_EVAL_DIR", str(tmp_path / "evals"))
    env.mkdir(parents=True, exist_ok=True)
    (env / "video_focalnet_tiny_k400.pth").write_bytes(files["video_focalnet_tiny_k400.pth"])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    asked = len(server.requests)
    code, printed = _evaluate(["--checkpoint", "video_focalnet_tiny_k400",
                               "--opts", *_synthetic_eval_opts(synthetic)], capsys)
    assert code == 0, printed.err[-2000:]
    result = json.loads((tmp_path / "evals" / "video_focalnet_tiny_k400" /
                         "eval_results.json").read_text())
    assert result["num_videos"] == 2 and 0.0 <= result["top1"] <= 100.0
    assert list(work.iterdir()) == []  # no output/default in the current folder
    assert sorted(p.name for p in env.iterdir()) == ["video_focalnet_tiny_k400.pth",
                                                     "video_focalnet_tiny_k400.pth.sha256"]
    assert len(server.requests) == asked


@pytest.mark.parametrize("argv, words", [
    (["--checkpoint", "openai:ViT-B/16"], "initialisation weights for MODEL.VITA.BACKBONE_PATH, "
                                          "not a trained model"),
    (["--checkpoint", "focalnet_tiny_srf"], "initialisation weights for TRAIN.PRETRAINED_PATH"),
    (["--checkpoint", "video_focalnet_tiny_k40"], "did you mean video_focalnet_tiny_k400"),
])
def test_evaluation_refuses_what_is_not_a_model_checkpoint(env, server, argv, words, tmp_path,
                                                           capsys, monkeypatch):
    monkeypatch.setenv("VIDEO_EVAL_DIR", str(tmp_path / "evals"))
    asked = len(server.requests)
    code, printed = _evaluate(argv, capsys)
    lines = printed.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], printed.err
    assert len(server.requests) == asked and not (tmp_path / "evals").exists()
    assert not env.exists() or not any(env.iterdir())


def test_a_stalled_mirror_is_reported_at_each_try(tmp_path, monkeypatch, caplog):
    """A server that accepts the connection and never answers: each timed-out try is a warning
    line (shown under --quiet too), then one error; never minutes of silence."""
    import socket
    import threading
    monkeypatch.setattr(download, "_BACKOFF_SCALE", 0.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_hold():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/w.pth"
    try:
        with caplog.at_level(logging.WARNING, logger="engine.download"):
            with pytest.raises(download.DownloadError, match="cannot connect"):
                download.fetch_url(url, str(tmp_path / "w.pth"), retries=2, timeout=0.2,
                                   progress=False)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    tries = [r.getMessage() for r in caplog.records if "no answer from 127.0.0.1" in r.getMessage()]
    assert len(tries) == 2 and "try 2 of 3" in tries[0] and "try 3 of 3" in tries[1]
    assert not (tmp_path / "w.pth").exists()
