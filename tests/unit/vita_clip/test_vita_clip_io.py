"""Vita-CLIP files and interfaces: CLIP checkpoints (TorchScript archive read without running code,
state dicts, strict report), building from a config and class names (the model family), the
stateless text side (encode_text, the evaluator's features-once, the on-disk cache), configs and
ablation files."""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from engine.config import ConfigError, load_cfg
from engine.evaluation import evaluate
from engine.registry import model_family
from engine.text_classifier import text_cache_key, zero_shot_classifier
from common.fileio import is_temp_file
from common.safe_load import UnsafeCheckpointError
import vita_clip
from vita_clip import weights as W
from vita_clip.family import FAMILY

REPO = Path(__file__).resolve().parents[3]
NAMES = ["archery", "playing guitar", "juggling balls"]
TINY = dict(input_size=(32, 32), num_frames=2, feature_dim=32, patch_size=(16, 16), num_heads=2,
            num_layers=2, mlp_factor=2.0, embed_dim=16, text_transformer_width=16,
            text_transformer_heads=2, text_transformer_layers=2, num_global_prompts=3,
            text_num_prompts=4, use_summary_token=True, use_local_prompts=True,
            use_global_prompts=True, use_text_prompt_learning=True)


def tiny_model(**overrides):
    kw = dict(TINY)
    kw.update(overrides)
    return vita_clip.VitaCLIP(class_names=kw.pop("class_names", NAMES), **kw)


def openai_state_dict(seed=0, dtype=torch.float16, width=32, text=16, layers=2, tokens=5):
    """A random CLIP state dict in OpenAI names for the tiny model."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(shape, generator=gen).to(dtype)

    sd = {"visual.conv1.weight": r(width, 3, 16, 16), "visual.class_embedding": r(width),
          "visual.positional_embedding": r(tokens, width), "visual.ln_pre.weight": r(width),
          "visual.ln_pre.bias": r(width), "visual.ln_post.weight": r(width),
          "visual.ln_post.bias": r(width), "visual.proj": r(width, 16),
          "token_embedding.weight": r(49408, text), "positional_embedding": r(77, text),
          "ln_final.weight": r(text), "ln_final.bias": r(text), "text_projection": r(text, 16),
          "logit_scale": r(), "input_resolution": torch.tensor(32),
          "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
    for prefix, w in (("visual.transformer", width), ("transformer", text)):
        hidden = 2 * w if prefix.startswith("visual") else 4 * w
        for i in range(layers):
            p = f"{prefix}.resblocks.{i}."
            sd.update({p + "attn.in_proj_weight": r(3 * w, w), p + "attn.in_proj_bias": r(3 * w),
                       p + "attn.out_proj.weight": r(w, w), p + "attn.out_proj.bias": r(w),
                       p + "ln_1.weight": r(w), p + "ln_1.bias": r(w), p + "ln_2.weight": r(w),
                       p + "ln_2.bias": r(w), p + "mlp.c_fc.weight": r(hidden, w),
                       p + "mlp.c_fc.bias": r(hidden), p + "mlp.c_proj.weight": r(w, hidden),
                       p + "mlp.c_proj.bias": r(w)})
    return sd


def module_from_state_dict(sd) -> nn.Module:
    """An nn.Module tree whose parameters carry the given dotted names (OpenAI layout)."""
    root = nn.Module()
    for name, value in sd.items():
        owner = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(owner, part):
                owner.add_module(part, nn.Module())
            owner = getattr(owner, part)
        owner.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    return root


class _Traceable(nn.Module):
    def __init__(self, inner):
        super().__init__()
        for name, child in inner.named_children():
            self.add_module(name, child)
        for name, p in inner.named_parameters(recurse=False):
            self.register_parameter(name, p)
        self.register_buffer("attn_mask", torch.full((4, 4), float("-inf")).triu(1))

    def forward(self, x):
        return x * 2


# ------------------------------------------------------------------------------------------------
# CLIP checkpoints
# ------------------------------------------------------------------------------------------------
def test_torchscript_archive_is_read_without_jit_load(tmp_path, monkeypatch):
    sd = openai_state_dict()
    traced = _Traceable(module_from_state_dict(sd))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(traced, torch.zeros(1))
        path = tmp_path / "ViT-tiny.pt"
        torch.jit.save(scripted, str(path))
    assert any("/code/" in n for n in zipfile.ZipFile(path).namelist())

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load executes archive code and must not be called")
    monkeypatch.setattr(torch.jit, "load", forbidden)
    tensors = W.read_torchscript_state_dict(str(path))
    expected = traced.state_dict()
    assert set(tensors) == set(expected)
    for key, value in expected.items():
        assert tensors[key].dtype == value.dtype and torch.equal(tensors[key], value), key

    model = tiny_model()
    report = model.load_backbone(str(path))
    assert report.cast_from == "float16"
    params = dict(model.named_parameters())
    assert params["visual.blocks.1.attn.k_proj.weight"].dtype == torch.float32
    torch.testing.assert_close(params["visual.blocks.1.attn.k_proj.weight"],
                               sd["visual.transformer.resblocks.1.attn.in_proj_weight"][32:64]
                               .float(), rtol=0, atol=0)
    torch.testing.assert_close(params["visual.cls_token"], sd["visual.class_embedding"].float(),
                               rtol=0, atol=0)
    assert torch.count_nonzero(params["visual.patch_embed.proj.bias"]) == 0
    torch.testing.assert_close(params["textual.transformer.resblocks.0.mlp.c_fc.bias"],
                               sd["transformer.resblocks.0.mlp.c_fc.bias"].float(), rtol=0, atol=0)
    assert params["logit_scale"].item() == pytest.approx(sd["logit_scale"].float().item())
    # prompt template embeddings come from the loaded token table
    tokens = model.prompt_learner.tokenized_prompts
    torch.testing.assert_close(model.prompt_learner.token_prefix[:, 0],
                               sd["token_embedding.weight"][tokens[:, 0]].float(), rtol=0, atol=0)


def test_state_dict_files_and_build_model(tmp_path):
    sd = openai_state_dict(dtype=torch.float32)
    path = tmp_path / "clip_state.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    model = tiny_model()
    model.load_backbone(str(path))
    torch.testing.assert_close(model.visual.blocks[0].mlp.fc1.weight,
                               sd["visual.transformer.resblocks.0.mlp.c_fc.weight"])
    # through the config: BACKBONE_PATH is loaded before the prompt template is embedded
    cfg = load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"),
                   ["DATA.IMG_SIZE", 32, "DATA.NUM_FRAMES", 2,
                    "MODEL.VITA.FEATURE_DIM", 32, "MODEL.VITA.NUM_HEADS", 2,
                    "MODEL.VITA.MLP_FACTOR", 2.0, "MODEL.VITA.EMBED_DIM", 16,
                    "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", 16, "MODEL.VITA.TEXT_TRANSFORMER_HEADS", 2,
                    "MODEL.VITA.BACKBONE_PATH", str(path), "OUTPUT", str(tmp_path / "out")])
    built = FAMILY.build(cfg, NAMES)
    assert built.backbone_report is not None and len(built.backbone_report.loaded) > 50
    assert built.class_names == NAMES and built.num_classes == 3
    emb = sd["token_embedding.weight"]
    suffix = built.prompt_learner.token_suffix
    ids = built.prompt_learner.tokenized_prompts[:, 1 + built.prompt_learner.n_ctx:]
    torch.testing.assert_close(suffix, emb[ids])
    # EVAL_MODE: every weight comes from a checkpoint afterwards, the backbone file is not read
    eval_cfg = cfg.clone()
    eval_cfg.defrost()
    eval_cfg.EVAL_MODE = True
    eval_cfg.MODEL.VITA.BACKBONE_PATH = str(tmp_path / "not_here.pt")
    assert FAMILY.build(eval_cfg, NAMES).backbone_report is None


def test_strict_backbone_report():
    model = tiny_model()
    sd = openai_state_dict(dtype=torch.float32)
    missing = dict(sd)
    del missing["visual.ln_post.bias"]
    with pytest.raises(ValueError, match=r"missing 1 CLIP tensors: visual\.ln_post\.bias"):
        model.load_backbone(missing)
    extra = dict(sd, **{"visual.extra_head.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="no place in the model: visual.extra_head.weight"):
        model.load_backbone(extra)
    wrong = dict(sd, **{"visual.positional_embedding": torch.zeros(197, 32)})
    with pytest.raises(ValueError, match=r"visual\.pos_embed: file has shape \(197, 32\)"):
        model.load_backbone(wrong)
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        model.load_backbone({"foo.weight": torch.zeros(1)})
    # a zero-shot model without a text tower skips (and reports) the text tensors
    zs = tiny_model(use_text_prompt_learning=False, zeroshot_evaluation=True,
                    zeroshot_text_features=torch.randn(3, 16))
    report = zs.load_backbone(sd)
    assert report.skipped_text and "text-tower tensors skipped" in report.summary()


def test_archive_with_foreign_globals_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        archive.writestr("evil/code/__torch__.py", "")
    with pytest.raises(UnsafeCheckpointError, match=f"^refusing to load {path}: it can only be "
                                                    f"read by executing arbitrary pickled code"):
        W.read_checkpoint(str(path))


# ------------------------------------------------------------------------------------------------
# the model family: config keys, checks, building from class names
# ------------------------------------------------------------------------------------------------
def test_family_is_registered_and_builds_from_class_names(tmp_path):
    assert model_family("vita_clip") is FAMILY
    cfg = load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"))
    assert list(cfg.DATA.MEAN) == list(FAMILY.normalization(cfg)[0])  # CLIP statistics
    with pytest.raises(ValueError, match="key DATA.LABEL_LIST: Vita-CLIP builds its classifier"):
        FAMILY.build(cfg, None)
    model = FAMILY.build(cfg, ["a", "b"])
    assert model.num_classes == 2 and model.prompt_learner.ctx.shape[0] == 2  # CSC context
    assert FAMILY.example_input(cfg, batch_size=2).shape == (2, 4, 3, 48, 48)
    # precomputed zero-shot features need no names; the file must exist
    feats = tmp_path / "features.pt"
    torch.save(torch.randn(3, 32), feats)
    zs = cfg.clone()
    zs.defrost()
    zs.MODEL.VITA.ZEROSHOT_EVALUATION = True
    zs.MODEL.VITA.USE_TEXT_PROMPT_LEARNING = False
    zs.MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH = str(feats)
    assert FAMILY.build(zs, None).num_classes == 3
    with pytest.raises(ValueError, match="features hold 3 classes but 2 class names"):
        FAMILY.build(zs, ["a", "b"])
    zs.MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH = str(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="key MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH: file not"):
        FAMILY.build(zs, None)


@pytest.mark.parametrize("opts,key", [
    (["MODEL.VITA.TEXT_PROMPT_POS", "side"], "MODEL.VITA.TEXT_PROMPT_POS"),
    (["MODEL.VITA.NUM_HEADS", 5], "MODEL.VITA.FEATURE_DIM"),
    (["DATA.IMG_SIZE", 40], "DATA.IMG_SIZE"),
    (["MODEL.VITA.ZEROSHOT_EVALUATION", True, "MODEL.VITA.USE_TEXT_PROMPT_LEARNING", False],
     "MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH"),
])
def test_config_checks_name_the_key(opts, key):
    with pytest.raises(ConfigError, match=f"key {key}:"):
        load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"), opts)


def test_benchmark_models():
    out = FAMILY.benchmark_models("vita_clip_b16", num_frames=2, num_classes=3, img_size=32,
                                  batch_size=2, feature_dim=32, num_heads=2, num_layers=1,
                                  embed_dim=16, text_transformer_width=16,
                                  text_transformer_heads=2, text_transformer_layers=1)
    model, video = out["model"], out["input"]
    assert video.shape == (2, 2, 3, 32, 32) and model.num_classes == 3
    model.eval()
    with torch.no_grad():
        text = model.encode_text()
        torch.testing.assert_close(model(video, text_features=text), model(video))
    with pytest.raises(KeyError, match="vita_clip_b16"):
        FAMILY.benchmark_models("vita_clip_l14")


def test_released_config_and_ablation_files():
    cfg = load_cfg(str(REPO / "configs/vita_clip/k400/vita_clip_b16.yaml"))
    kw = vita_clip.model_kwargs_from_cfg(cfg)
    assert kw["num_frames"] == 8 and kw["input_size"] == (224, 224)
    assert kw["text_prompt_CSC"] and kw["text_num_prompts"] == 8 and kw["num_global_prompts"] == 8
    assert cfg.TRAIN.BASE_LR == 4e-4 and cfg.TRAIN.WEIGHT_DECAY == 0.05
    assert cfg.DATA.SAMPLING == "dense" and cfg.DATA.FRAME_INTERVAL == 16
    for name in ("vita_prompts.yaml", "vita_prompt_counts.yaml"):
        data = yaml.safe_load((REPO / "configs/ablations" / name).read_text())
        assert len(data["variants"]) >= 4
        for variant in data["variants"]:
            opts = [x for k, v in variant["opts"].items() for x in (k, v)]
            load_cfg(str(REPO / "configs/vita_clip/k400/vita_clip_b16.yaml"), opts)


# ------------------------------------------------------------------------------------------------
# the stateless text side
# ------------------------------------------------------------------------------------------------
def _count_text_calls(model):
    calls = []
    model.textual.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_forward_encodes_text_unless_given():
    model = tiny_model(text_prompt_CSC=True)
    calls = _count_text_calls(model)
    video = torch.randn(2, 2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        first = model(video)
        second = model(video)
        assert len(calls) == 2 and torch.equal(first, second)  # nothing kept between calls
        text = model.encode_text()
        assert text.shape == (3, 16) and len(calls) == 3
        torch.testing.assert_close(model(video, text_features=text), first, rtol=0, atol=0)
        assert len(calls) == 3  # given features: the text tower does not run
        model.prompt_learner.ctx.add_(torch.randn_like(model.prompt_learner.ctx))
        assert not torch.allclose(model(video), first)  # new prompts are seen at once
    with pytest.raises(ValueError, match=r"\[classes, embed_dim\]"):
        model(video, text_features=text[0])
    # training: gradients reach the learned context through forward's own encode_text
    model.train()
    model(video).sum().backward()
    assert model.prompt_learner.ctx.grad is not None


def test_evaluate_encodes_class_text_once_per_run():
    torch.manual_seed(0)
    model = tiny_model(text_prompt_CSC=True)
    calls = _count_text_calls(model)
    # views (B, V, T, C, H, W), labels, dataset indices
    batches = [(torch.randn(2, 2, 2, 3, 32, 32), torch.tensor([0, 1]),
                torch.tensor([2 * i, 2 * i + 1])) for i in range(3)]
    result = evaluate(model, batches, torch.device("cpu"), show_progress=False)
    assert len(calls) == 1  # 3 batches, one text-tower run
    assert result["scores"].shape == (6, 3)
    with torch.no_grad():
        expected = torch.cat([model(v.flatten(0, 1)).softmax(-1).view(2, 2, -1).mean(1)
                              for v, _, _ in batches])
    torch.testing.assert_close(result["scores"], expected)
    # given features (another label set) are used as they are, the own classes are not encoded
    calls.clear()
    other = torch.randn(5, 16)
    result = evaluate(model, batches, torch.device("cpu"), show_progress=False,
                      text_features=other)
    assert result["scores"].shape == (6, 5) and not calls


def test_encode_text_of_other_names():
    model = tiny_model(text_prompt_CSC=False)
    model.eval()
    with torch.no_grad():
        own = model.encode_text()
        torch.testing.assert_close(model.encode_text(NAMES), own, rtol=0, atol=0)
        new = model.encode_text(["archery", "surfing"])
    torch.testing.assert_close(new[0], own[0])  # same name, same learned generic context
    assert model.text_prompt_mode() == "learned"
    assert model.text_prompt_mode(["surfing"]) == "learned-generic"
    csc = tiny_model(text_prompt_CSC=True)
    assert csc.text_prompt_mode(["surfing"]) == "class-only"
    assert set(csc.text_state_dict(["surfing"])) == {f"textual.{k}" for k in
                                                      csc.textual.state_dict()}
    assert "prompt_learner.ctx" in csc.text_state_dict()
    assert vita_clip.VitaCLIP.num_classes_in(csc.state_dict()) == 3
    assert vita_clip.VitaCLIP.num_classes_in({"visual.proj": torch.zeros(1)}) is None


# ------------------------------------------------------------------------------------------------
# the on-disk text-feature cache (engine/text_classifier.py)
# ------------------------------------------------------------------------------------------------
def test_disk_cache_hit_miss_and_label_swap(tmp_path, monkeypatch):
    model = tiny_model(text_prompt_CSC=True)
    model.eval()
    cache = tmp_path / "text_cache"
    new_names = ["brush hair", "cartwheel", "catch", "chew"]
    feats = zero_shot_classifier(model, new_names, str(cache))
    files = sorted(cache.glob("text_features_*.pt"))
    assert feats.shape == (4, 16) and len(files) == 1
    # CSC context belongs to the training classes: new names use plain class-name prompts
    with torch.no_grad():
        plain = model.textual.encode_tokens(vita_clip.tokenize(new_names))
    torch.testing.assert_close(feats, plain)
    # the learned context is not part of a class-only key: other prompts, same file
    key = text_cache_key(model, new_names)
    with torch.no_grad():
        model.prompt_learner.ctx.add_(1.0)
    assert text_cache_key(model, new_names) == key

    def boom(*args):
        raise AssertionError("cache hit expected")
    monkeypatch.setattr(model, "encode_text", boom)
    again = zero_shot_classifier(model, new_names, str(cache))
    assert torch.equal(again, feats)
    monkeypatch.undo()

    with torch.no_grad():  # other text weights: a new key, a new file
        model.textual.ln_final.bias.add_(0.1)
    changed = zero_shot_classifier(model, new_names, str(cache))
    assert len(list(cache.glob("text_features_*.pt"))) == 2
    assert not torch.allclose(changed, feats)
    zero_shot_classifier(model, new_names[:3], str(cache))
    assert len(list(cache.glob("text_features_*.pt"))) == 3
    assert not [p for p in cache.iterdir() if is_temp_file(p.name)]
    # a damaged file is recomputed, never trusted
    target = cache / f"text_features_{text_cache_key(model, new_names)[:32]}.pt"
    target.write_bytes(b"not a torch file")
    torch.testing.assert_close(zero_shot_classifier(model, new_names, str(cache)), changed)

    # scoring against the swapped label set: logits over the new classes, text tower not run
    calls = _count_text_calls(model)
    with torch.no_grad():
        logits = model(torch.randn(2, 2, 3, 32, 32), text_features=changed)
    assert logits.shape == (2, 4) and not calls


def test_cache_key_covers_prompt_settings_and_needs_encode_text():
    front = tiny_model(text_prompt_pos="front")
    end = tiny_model(text_prompt_pos="end")
    end.load_state_dict(front.state_dict())
    assert text_cache_key(front, NAMES) != text_cache_key(end, NAMES)
    with pytest.raises(ValueError, match="no encode_text"):
        zero_shot_classifier(nn.Linear(2, 2), ["a"], None)
