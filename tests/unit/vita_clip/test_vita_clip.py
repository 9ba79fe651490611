"""Vita-CLIP: golden conformance, equality with the line-by-line reference port over every
prompt setting, freezing, precision and the model's interfaces."""
from __future__ import annotations

import itertools

import pytest
import torch

import datasets
from engine.build import build_model
from engine.config import get_cfg
import vita_clip
from vita_clip import tokenizer as tk
from tests.helpers.shared import golden_case, golden_files
from tests.reference_vita import ReferenceVitaCLIP, reference_from_model

TOL = dict(rtol=1e-7, atol=1e-9)
NAMES = ["archery", "playing guitar", "juggling_balls", "riding a bike", "making tea"]


def cfg_from_official(config: dict, label_file) -> "CfgNode":  # noqa: F821
    """Map official constructor arguments onto config keys (generic: NAME -> MODEL.VITA.NAME)."""
    cfg = get_cfg()
    cfg.MODEL.TYPE = "vita_clip"
    for key, value in config.items():
        if key == "input_size":
            assert value[0] == value[1]
            cfg.DATA.IMG_SIZE = int(value[0])
        elif key == "num_frames":
            cfg.DATA.NUM_FRAMES = int(value)
        else:
            default = cfg.MODEL.VITA[key.upper()]
            cfg.MODEL.VITA[key.upper()] = type(default)(value) if isinstance(value, list) else value
    cfg.DATA.LABEL_LIST = str(label_file)
    return cfg


# ------------------------------------------------------------------------------------------------
# golden conformance
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", golden_files("vita*.pt"), ids=lambda p: p.stem)
def test_golden(path, tmp_path):
    gold = torch.load(golden_case(path), map_location="cpu", weights_only=True)
    label_file = tmp_path / "classes.txt"
    label_file.write_text("\n".join(gold["class_names"]))
    cfg = cfg_from_official(gold["config"], label_file)
    if "zeroshot_text_features" in gold:
        feats = tmp_path / "features.pt"
        torch.save(gold["zeroshot_text_features"], feats)
        cfg.MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH = str(feats)
    # the class names go the engine's way: the config's class-name file, read by the data layer
    model = build_model(cfg, datasets.class_names(cfg))
    config = gold["config"]

    # tokenizer: the exact ids of the text the model encodes
    if config["use_text_prompt_learning"]:
        tokens = model.prompt_learner.tokenized_prompts
    else:
        tokens = tk.tokenize([tk.clean_class_name(n) for n in gold["class_names"]])
    assert tokens.dtype == torch.long
    assert torch.equal(tokens, gold["text_tokens"].long())

    sd = gold["state_dict"]
    # OpenAI-format CLIP through our loader: every loaded tensor equals the golden's
    report = model.load_backbone(gold["clip_state_dict"])
    params = dict(model.named_parameters())
    assert report.loaded, "nothing was loaded"
    for key in report.loaded:
        assert torch.equal(params[key].detach().double(), sd[key]), key
    # the reference's converted backbone file loads to the same values
    report2 = model.load_backbone(gold["backbone_state_dict"])
    assert sorted(report2.loaded) == sorted(report.loaded)
    for key in report2.loaded:
        assert torch.equal(params[key].detach().double(), sd[key]), key
    if config["use_text_prompt_learning"]:  # template embeddings derived from the loaded table
        torch.testing.assert_close(model.prompt_learner.token_suffix.double(),
                                   sd["prompt_learner.token_suffix"], rtol=0, atol=0)

    model.double()
    model.load_state_dict(sd, strict=True)
    model.eval()
    video = gold["input"].transpose(1, 2)  # golden B,C,T,H,W -> our B,T,C,H,W
    with torch.no_grad():
        logits, video_f, text_f = model(video, return_features=True)
    torch.testing.assert_close(logits, gold["output"], **TOL)
    torch.testing.assert_close(video_f, gold["video_features"], **TOL)
    torch.testing.assert_close(text_f, gold["text_features"], **TOL)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == gold["trainable"]

    # the reference port agrees with the golden too (it is the benchmark baseline)
    ref = ReferenceVitaCLIP(gold["class_names"], config, gold.get("zeroshot_text_features"))
    ref = ref.double()
    ref.load_state_dict(sd, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ref(gold["input"]), gold["output"], **TOL)


# ------------------------------------------------------------------------------------------------
# every prompt setting against the reference port
# ------------------------------------------------------------------------------------------------
TINY = dict(input_size=(32, 32), num_frames=2, feature_dim=32, patch_size=(16, 16), num_heads=2,
            num_layers=2, mlp_factor=2.0, embed_dim=16, text_transformer_width=16,
            text_transformer_heads=2, text_transformer_layers=2, num_global_prompts=3,
            text_num_prompts=4)


def tiny_model(**overrides):
    kw = dict(TINY, use_summary_token=True, use_local_prompts=True, use_global_prompts=True,
              use_text_prompt_learning=True)
    kw.update(overrides)
    names = kw.pop("class_names", NAMES)
    return vita_clip.VitaCLIP(class_names=names, **kw)


def randomise_(model, seed=0):
    """Every parameter/buffer to non-trivial values (no zero biases hiding a wrong path)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
                scale = 0.5 if tensor.dim() < 2 else tensor.shape[-1] ** -0.5
                tensor.copy_(noise * scale + (1.0 if name.endswith("norm1.weight") else 0.0))


VISUAL_SWITCHES = list(itertools.product([False, True], repeat=3))
TEXT_SETTINGS = [dict(), dict(text_prompt_CSC=True), dict(text_prompt_pos="front"),
                 dict(text_prompt_pos="middle", text_prompt_CSC=True),
                 dict(text_prompt_init="a video of"), dict(text_prompt_pos="middle",
                                                           text_prompt_init="a_photo of a")]


@pytest.mark.parametrize("summary,local,glob", VISUAL_SWITCHES)
def test_visual_switches_match_reference(summary, local, glob):
    torch.manual_seed(0)
    model = tiny_model(use_summary_token=summary, use_local_prompts=local,
                       use_global_prompts=glob).double()
    randomise_(model)
    ref = reference_from_model(model)
    video = torch.randn(3, 2, 3, 32, 32, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(video), ref(video.transpose(1, 2)), **TOL)
    # 4 frames through a 2-frame model: chunks of 2 frames in the prompt paths, as the reference
    video4 = torch.randn(2, 4, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(video4), ref(video4.transpose(1, 2)), **TOL)
    # the official freezing rule
    expected = sorted(n for n, p in ref.named_parameters() if p.requires_grad)
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == expected
    has_cls_proj = "visual.blocks.0.cls_proj.weight" in dict(model.named_parameters())
    assert has_cls_proj == (summary or local)


@pytest.mark.parametrize("settings", TEXT_SETTINGS, ids=lambda s: "-".join(
    f"{k.split('_')[-1]}={v}" for k, v in s.items()) or "generic-end")
def test_text_prompts_match_reference(settings):
    torch.manual_seed(0)
    model = tiny_model(**settings).double()
    randomise_(model, seed=1)
    ref = reference_from_model(model)
    assert torch.equal(model.prompt_learner.tokenized_prompts, ref.tokenized_prompts.long())
    video = torch.randn(2, 2, 3, 32, 32, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        ours, _, text = model(video, return_features=True)
        theirs, _, ref_text = ref(video.transpose(1, 2), return_features=True)
    torch.testing.assert_close(text, ref_text, **TOL)
    torch.testing.assert_close(ours, theirs, **TOL)
    if settings.get("text_prompt_init"):
        words = settings["text_prompt_init"].replace("_", " ").split()
        assert model.prompt_learner.n_ctx == len(words)
        assert model.prompt_learner.ctx.dim() == 2  # word init is always generic


def test_precomputed_zero_shot_path(tmp_path):
    feats = torch.randn(5, 16, dtype=torch.float64)
    model = tiny_model(use_text_prompt_learning=False, zeroshot_evaluation=True,
                       zeroshot_text_features=feats)
    assert not hasattr(model, "textual")
    assert "text_features" not in dict(model.named_buffers())
    assert all("text_features" not in k for k in model.state_dict())
    ref = reference_from_model(model)
    video = torch.randn(2, 2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        out = model(video)  # float64 features are cast to the float32 video features
        assert out.dtype == torch.float32
        ref.text_features = feats.float()
        torch.testing.assert_close(out, ref(video.transpose(1, 2)), rtol=1e-5, atol=1e-6)
    assert model.text_prompt_mode() == "precomputed"
    assert torch.equal(model.encode_text(), feats)
    with pytest.raises(ValueError, match="no text tower"):
        model.encode_text(["a"])


def test_plain_class_name_prompts_without_prompt_learning():
    model = tiny_model(use_text_prompt_learning=False)
    model.eval()
    assert not any(p.requires_grad for p in model.textual.parameters())
    tokens = tk.tokenize([n.replace("_", " ") for n in NAMES])
    with torch.no_grad():
        _, _, text = model(torch.randn(1, 2, 3, 32, 32), return_features=True)
        plain = model.textual.encode_tokens(tokens)
    torch.testing.assert_close(text, plain / plain.norm(dim=-1, keepdim=True))
    # training still works: only visual prompts / logit scale get gradients
    model.train()
    model(torch.randn(2, 2, 3, 32, 32)).sum().backward()
    assert model.visual.global_prompts.grad is not None
    assert all(p.grad is None for p in model.textual.parameters())


# ------------------------------------------------------------------------------------------------
# training-time behaviour, precision
# ------------------------------------------------------------------------------------------------
def test_gradients_reach_prompts_only():
    model = tiny_model(text_prompt_CSC=True)
    model.train()
    logits = model(torch.randn(2, 2, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads == trainable
    assert "prompt_learner.ctx" in grads and "logit_scale" in grads
    assert model.prompt_learner.ctx.grad.abs().sum() > 0
    assert not any(n.startswith("textual.") or "cls_proj" in n for n in grads)


def test_grad_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = tiny_model()
    video = torch.randn(2, 2, 3, 32, 32)
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(flag)
        model(video).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs(dtype):
    torch.manual_seed(0)
    model = tiny_model()
    video = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        full = model(video)
    stream = []
    for block in (model.visual.blocks[-1], model.textual.transformer.resblocks[-1]):
        block.register_forward_hook(lambda mod, inp, out: stream.append(out.dtype))
    with torch.autocast("cpu", dtype=dtype):
        out = model(video)
        out.float().sum().backward()
    assert stream == [torch.float32, torch.float32]  # the residual streams stay float32
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), full, rtol=0.1, atol=0.5)
    assert model.prompt_learner.ctx.grad is not None
    # low-precision copies of frozen weights are reused only while the weights are unchanged
    with torch.no_grad():
        model.visual.blocks[0].mlp.fc1.weight.mul_(3.0)
        model.textual.transformer.resblocks[0].attn.in_proj_weight.mul_(3.0)
        with torch.autocast("cpu", dtype=dtype):
            changed = model(video)
        fresh = model(video)
    torch.testing.assert_close(changed.float(), fresh, rtol=0.1, atol=0.5)
    assert not torch.allclose(changed.float(), out.float().detach(), atol=1e-3)


def test_wrong_frame_count_and_layout_errors():
    model = tiny_model(num_frames=4)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.randn(3, 3, 32, 32))


# ------------------------------------------------------------------------------------------------
# parameter counts of the released configuration (meta device: no memory, no init cost)
# ------------------------------------------------------------------------------------------------
def test_released_config_parameter_counts():
    import timm
    with torch.device("meta"):
        model = timm.create_model("vita_clip_b16", num_frames=8, num_classes=400)
    trainable, total = model.parameter_counts()
    assert trainable == 30_158_849
    assert total == 121_800_960 + 63_428_096 + 1_638_400 + 1
    assert model.prompt_learner.ctx.shape == (400, 8, 512)
    assert sum(p.numel() for n, p in model.named_parameters() if "cls_proj" in n) == 7_087_104
    nwd = model.no_weight_decay()
    assert {"logit_scale", "visual.time_embed", "visual.global_prompts",
            "prompt_learner.ctx"} <= nwd
