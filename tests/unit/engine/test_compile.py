"""torch.compile in the engine: config keys, one graph per model (forward and backward), no
recompilation for smaller batches, compiled steps equal eager ones (accumulation, bf16,
activation checkpointing), checkpoints with plain names both ways.

These tests compile with the ``aot_eager`` backend (engine.compile.BACKEND): the same dynamo and
autograd graphs as inductor without its C++ code generation, which takes minutes on two cores.
tests/e2e/test_compile_e2e.py runs inductor itself, and DDP under torchrun.
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

import engine.compile as engine_compile
from engine.build import unwrap_model
from engine.checkpoint import build_checkpoint, extract_state_dict, load_model_weights
from engine.compile import StaticBatch, compile_clock, compile_model
from engine.config import COMPILE_MODES, ConfigError, load_cfg
from engine.evaluation import evaluate
from engine.trainer import TrainState, train_one_epoch
from video_focalnet import VideoFocalNet
from vita_clip import VitaCLIP

# Every test here compiles (about 80 s together on 2 cores): in the whole suite, not in
# scripts/test.sh --fast.
pytestmark = pytest.mark.slow

DESIGNS = ("parallel", "spatial", "spatial_temporal", "temporal_spatial", "joint")
FOCAL = dict(img_size=32, embed_dim=8, depths=(1, 1, 1, 1), num_classes=5, num_frames=4,
             drop_path_rate=0.0)


@pytest.fixture(autouse=True)
def fresh_dynamo(monkeypatch):
    """Every test starts from empty compile caches and compiles with aot_eager."""
    monkeypatch.setattr(engine_compile, "BACKEND", "aot_eager")
    dynamo.reset()
    dynamo.utils.counters.clear()
    yield
    dynamo.reset()


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------
def test_compile_keys_default_off_and_take_every_mode(tmp_path):
    cfg = load_cfg(None)
    assert cfg.TRAIN.COMPILE == "off" and cfg.TEST.COMPILE == "off"
    for mode in COMPILE_MODES:
        cfg = load_cfg(None, ["TRAIN.COMPILE", mode, "TEST.COMPILE", mode])
        assert (cfg.TRAIN.COMPILE, cfg.TEST.COMPILE) == (mode, mode)
    # YAML reads a bare off/on as a bool: both spellings still mean the mode
    path = tmp_path / "c.yaml"
    path.write_text("TRAIN:\n  AMP: off\n  COMPILE: off\nTEST:\n  COMPILE: on\n")
    cfg = load_cfg(str(path))
    assert (cfg.TRAIN.AMP, cfg.TRAIN.COMPILE, cfg.TEST.COMPILE) == ("off", "off", "default")


@pytest.mark.parametrize("key", ["TRAIN.COMPILE", "TEST.COMPILE"])
def test_unknown_compile_mode_names_the_key_and_the_choices(key):
    with pytest.raises(ConfigError) as err:
        load_cfg(None, [key, "reduce_overhead"])
    message = str(err.value)
    assert key in message and "off, default, reduce-overhead, max-autotune" in message
    assert "Did you mean 'reduce-overhead'?" in message


# ---------------------------------------------------------------------------------------------
# One graph forward, one graph backward
# ---------------------------------------------------------------------------------------------
class GraphCounter:
    """A backend that counts the forward and backward graphs AOTAutograd hands it."""

    def __init__(self):
        self.forward = self.backward = 0

        def forward(gm, example_inputs):
            self.forward += 1
            return make_boxed_func(gm.forward)

        def backward(gm, example_inputs):
            self.backward += 1
            return make_boxed_func(gm.forward)

        self.backend = aot_autograd(fw_compiler=forward, bw_compiler=backward)


def assert_one_graph(model, *inputs, amp=None, train=True):
    """No graph break in the forward or the backward: ``fullgraph=True`` makes dynamo raise at
    the first break (naming its reason), and AOTAutograd hands over exactly one forward graph
    and, when training, one backward graph. (The same check as ``torch._dynamo.explain``'s
    graph count, at half the tracing cost.)"""
    model.train(train)
    autocast = torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None)
    counter = GraphCounter()
    compiled = torch.compile(model, backend=counter.backend, fullgraph=True)
    with autocast, torch.set_grad_enabled(train):
        out = compiled(*inputs)
    if train:
        out.float().square().mean().backward()
    assert (counter.forward, counter.backward) == (1, 1 if train else 0)
    assert dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("design", DESIGNS)
def test_video_focalnet_is_one_graph_in_every_design(design):
    model = VideoFocalNet(**FOCAL, st_design=design)
    assert_one_graph(model, torch.randn(2, 4, 3, 32, 32))


@pytest.mark.parametrize("design", ["parallel", "joint"])
def test_video_focalnet_with_activation_checkpointing_and_bf16_is_one_graph(design):
    model = VideoFocalNet(**{**FOCAL, "drop_path_rate": 0.1}, st_design=design,
                          use_checkpoint=True)
    assert_one_graph(model, torch.randn(2, 4, 3, 32, 32), amp=torch.bfloat16)


def test_video_focalnet_evaluation_is_one_graph():
    assert_one_graph(VideoFocalNet(**FOCAL), torch.randn(3, 4, 3, 32, 32), train=False)


VITA_CASES = {
    "prompts-fp32-train": (dict(), None, True),
    "prompts-bf16-train": (dict(), torch.bfloat16, True),
    "prompts-bf16-eval": (dict(), torch.bfloat16, False),
    "prompts-checkpointing-train": (dict(checkpointing=True), None, True),
    "middle-prompts-train": (dict(text_prompt_pos="middle", text_prompt_CSC=True), None, True),
    "class-names-train": (dict(use_text_prompt_learning=False), None, True),
    "class-names-bf16-eval": (dict(use_text_prompt_learning=False), torch.bfloat16, False),
}


def tiny_vita_clip(**overrides) -> VitaCLIP:
    """Every prompt kind on, two layers of width 32 (text 16), 32 px, two frames."""
    kw = dict(input_size=(32, 32), num_frames=2, feature_dim=32, patch_size=(16, 16),
              num_heads=2, num_layers=2, mlp_factor=2.0, embed_dim=16, text_transformer_width=16,
              text_transformer_heads=2, text_transformer_layers=2, num_global_prompts=3,
              text_num_prompts=4, use_summary_token=True, use_local_prompts=True,
              use_global_prompts=True, use_text_prompt_learning=True)
    kw.update(overrides)
    return VitaCLIP(class_names=["jumping", "running fast", "swimming"], **kw)


@pytest.mark.parametrize("case", list(VITA_CASES))
def test_vita_clip_is_one_graph(case):
    overrides, amp, train = VITA_CASES[case]
    overrides = dict(overrides)
    checkpointing = overrides.pop("checkpointing", False)
    model = tiny_vita_clip(**overrides)
    model.set_grad_checkpointing(checkpointing)
    assert_one_graph(model, torch.randn(2, 2, 3, 32, 32), amp=amp, train=train)


# ---------------------------------------------------------------------------------------------
# Static batch shapes: no recompilation
# ---------------------------------------------------------------------------------------------
def test_static_batch_pads_smaller_batches_with_real_samples():
    static = StaticBatch(True)
    full, real = static.pad(torch.arange(4.0).view(4, 1))
    assert real == 4 and full.shape == (4, 1)
    padded, real = static.pad(torch.tensor([[7.0], [8.0]]))
    assert real == 2 and padded.view(-1).tolist() == [7.0, 8.0, 7.0, 7.0]
    off = StaticBatch(False)
    assert off.pad(torch.zeros(2, 1))[0].shape == (2, 1)


class ListLoader(list):
    """Batches in a list, with the dataset length evaluate() checks."""

    def __init__(self, batches, dataset_len=None):
        super().__init__(batches)
        if dataset_len is not None:
            self.dataset = range(dataset_len)


def _train_cfg(**train):
    opts = ["TRAIN.CLIP_GRAD", "1.0", "PRINT_FREQ", "100"]
    for key, value in train.items():
        opts += [f"TRAIN.{key}", str(value)]
    return load_cfg(None, opts)


def _epoch(cfg, model, batches, compiled: bool):
    """One epoch of train_one_epoch on `batches`; returns the trained parameters."""
    from engine.build import build_criterion, build_grad_scaler, build_optimizer, build_scheduler
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch=len(batches))
    net = compile_model(model, "default" if compiled else "off")
    train_one_epoch(cfg, net, ListLoader(batches), optimizer, scheduler,
                    build_grad_scaler(cfg, torch.device("cpu")), build_criterion(cfg),
                    torch.device("cpu"), TrainState(), show_progress=False)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("amp, checkpointing", [("off", False), ("bf16", True)])
def test_compiled_training_equals_eager_and_compiles_once(amp, checkpointing):
    """Accumulation over 2 micro-batches, last batch smaller (3 of 4): one forward and one
    backward compilation for the whole epoch, and the same weights as eager training."""
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 4, 3, 32, 32, generator=gen), torch.randint(0, 5, (n,),
                                                                          generator=gen))
               for n in (4, 4, 4, 3)]
    cfg = _train_cfg(AMP=amp, ACCUMULATION_STEPS=2, USE_CHECKPOINT=checkpointing)
    torch.manual_seed(0)
    eager_model = VideoFocalNet(**FOCAL, use_checkpoint=checkpointing)
    compiled_model = VideoFocalNet(**FOCAL, use_checkpoint=checkpointing)
    compiled_model.load_state_dict(eager_model.state_dict())
    eager = _epoch(cfg, eager_model, batches, compiled=False)
    clock = compile_clock()
    before = clock.compiles
    compiled = _epoch(cfg, compiled_model, batches, compiled=True)
    assert clock.compiles - before == 1  # one graph (its backward is compiled with it)
    assert dynamo.utils.counters["stats"]["unique_graphs"] == 1
    tolerance = 1e-5 if amp == "off" else 2e-2
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, atol=tolerance, rtol=tolerance,
                                   msg=name)


def test_compiled_evaluation_compiles_once_for_all_views_and_the_last_batch():
    model = VideoFocalNet(**FOCAL).eval()
    gen = torch.Generator().manual_seed(1)
    # 5 videos x 3 views in batches of 2 videos: clips 6, 6, 3 (the last one padded to 6)
    batches, start = [], 0
    for videos in (2, 2, 1):
        views = torch.randn(videos, 3, 4, 3, 32, 32, generator=gen)
        batches.append((views, torch.arange(videos) % 5, torch.arange(start, start + videos)))
        start += videos
    loader = ListLoader(batches, dataset_len=5)
    eager = evaluate(model, loader, torch.device("cpu"), show_progress=False)
    clock = compile_clock()
    before = clock.compiles
    compiled = evaluate(compile_model(model, "default"), loader, torch.device("cpu"),
                        show_progress=False)
    assert clock.compiles - before == 1
    assert compiled["compile_s"] > 0 and eager["compile_s"] == 0
    torch.testing.assert_close(compiled["scores"], eager["scores"], atol=1e-6, rtol=1e-5)
    assert compiled["indices"].tolist() == list(range(5))


# ---------------------------------------------------------------------------------------------
# Checkpoints keep plain names
# ---------------------------------------------------------------------------------------------
def test_compiled_checkpoint_loads_into_an_uncompiled_model_and_back():
    torch.manual_seed(0)
    model = VideoFocalNet(**FOCAL)
    compiled = compile_model(model, "default")
    compiled(torch.randn(2, 4, 3, 32, 32)).sum().backward()
    assert unwrap_model(compiled) is model
    ckpt = build_checkpoint(compiled, epoch=0, iteration=1, max_accuracy=0.0, config_yaml="")
    assert set(ckpt["model"]) == set(VideoFocalNet(**FOCAL).state_dict())
    plain = VideoFocalNet(**FOCAL)
    load_model_weights(plain, ckpt, strict=True)  # compiled run -> uncompiled model
    for name, value in model.state_dict().items():
        assert torch.equal(plain.state_dict()[name], value)
    # uncompiled checkpoint -> a compiled wrapper (its inner model is loaded)
    back = VideoFocalNet(**FOCAL)
    back_compiled = compile_model(back, "default")
    plain_ckpt = build_checkpoint(plain, epoch=0, iteration=1, max_accuracy=0.0, config_yaml="")
    load_model_weights(back_compiled, plain_ckpt, strict=True)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    # a state dict saved from the wrapper by other code: "_orig_mod." is stripped
    wrapped = compiled.state_dict()
    assert all(k.startswith("_orig_mod.") for k in wrapped)
    assert set(extract_state_dict({"model": wrapped})) == set(model.state_dict())


# ---------------------------------------------------------------------------------------------
# End to end: train() with inductor, auto-resume across compiled and uncompiled runs; DDP
# ---------------------------------------------------------------------------------------------
def test_bf16_on_a_cpu_without_native_bf16_is_flagged(monkeypatch):
    from engine.build import slow_bf16_warning
    cpu = torch.device("cpu")
    bf16 = load_cfg(None, ["TRAIN.AMP", "bf16"])
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert "TRAIN.AMP off is faster" in slow_bf16_warning(bf16, cpu)
    assert slow_bf16_warning(bf16, torch.device("cuda")) is None
    assert slow_bf16_warning(load_cfg(None), cpu) is None
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert slow_bf16_warning(bf16, cpu) is None
