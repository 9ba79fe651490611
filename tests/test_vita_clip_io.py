"""Vita-CLIP files: CLIP checkpoints (TorchScript archive read without running code, state dicts,
strict report), class-name files, the text-feature caches, configs and ablation files."""
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
import vita_clip
from vita_clip import weights as W

REPO = Path(__file__).resolve().parents[1]
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
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(NAMES) + "\n")
    cfg = load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"),
                   ["DATA.LABEL_LIST", str(names), "DATA.IMG_SIZE", 32, "DATA.NUM_FRAMES", 2,
                    "MODEL.VITA.FEATURE_DIM", 32, "MODEL.VITA.NUM_HEADS", 2,
                    "MODEL.VITA.MLP_FACTOR", 2.0, "MODEL.VITA.EMBED_DIM", 16,
                    "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", 16, "MODEL.VITA.TEXT_TRANSFORMER_HEADS", 2,
                    "MODEL.VITA.BACKBONE_PATH", str(path), "OUTPUT", str(tmp_path / "out")])
    built = vita_clip.build_model(cfg)
    assert built.backbone_report is not None and len(built.backbone_report.loaded) > 50
    emb = sd["token_embedding.weight"]
    suffix = built.prompt_learner.token_suffix
    ids = built.prompt_learner.tokenized_prompts[:, 1 + built.prompt_learner.n_ctx:]
    torch.testing.assert_close(suffix, emb[ids])
    assert built.text_cache_dir == str(tmp_path / "out" / "text_cache")


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
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        W.read_checkpoint(str(path))


# ------------------------------------------------------------------------------------------------
# class names and configs
# ------------------------------------------------------------------------------------------------
def test_class_name_files(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("abseiling\nair drumming\n\n")
    assert vita_clip.read_class_names(str(plain)) == ["abseiling", "air drumming"]
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text('id,name\n1,"b, with comma"\n0,a\n')
    assert vita_clip.read_class_names(str(csv_file)) == ["a", "b, with comma"]
    gap = tmp_path / "gap.csv"
    gap.write_text("id,name\n0,a\n2,c\n")
    with pytest.raises(ValueError, match="without gaps"):
        vita_clip.read_class_names(str(gap))
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="line 2: empty class name"):
        vita_clip.read_class_names(str(blank))
    cfg = load_cfg(str(REPO / "configs/vita_clip/tiny.yaml"))
    with pytest.raises(ConfigError, match="DATA.LABEL_LIST"):
        vita_clip.build_model(cfg)


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
# text feature caches
# ------------------------------------------------------------------------------------------------
def _count_text_calls(model):
    calls = []
    model.textual.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_eval_reuses_text_features_until_prompts_change():
    model = tiny_model(text_prompt_CSC=True)
    calls = _count_text_calls(model)
    video = torch.randn(2, 2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        first = model(video)
        second = model(video)
    assert len(calls) == 1 and torch.equal(first, second)
    with torch.no_grad():
        # an optimizer step changes the version counter
        model.prompt_learner.ctx.add_(torch.randn_like(model.prompt_learner.ctx))
        third = model(video)
    assert len(calls) == 2 and not torch.allclose(first, third)
    model.train()
    with torch.no_grad():
        model(video)
    assert len(calls) == 3
    model(video).sum().backward()  # with gradients the text tower runs every time
    model(video)
    assert len(calls) == 5
    model.eval()
    with torch.no_grad():
        model(video)
        model.double()  # a dtype change is a new text side
        _, _, text = model(video.double(), return_features=True)
    assert len(calls) == 7 and text.dtype == torch.float64


def test_disk_cache_hit_miss_and_label_swap(tmp_path, monkeypatch):
    model = tiny_model(text_prompt_CSC=True)
    model.eval()
    cache = tmp_path / "text_cache"
    new_names = ["brush hair", "cartwheel", "catch", "chew"]
    feats = vita_clip.zero_shot_classifier(model, new_names, str(cache))
    files = sorted(cache.glob("text_features_*.pt"))
    assert feats.shape == (4, 16) and len(files) == 1
    # CSC context belongs to the training classes: new names use plain class-name prompts
    with torch.no_grad():
        plain = model.textual.encode_tokens(vita_clip.tokenize(new_names))
    torch.testing.assert_close(feats, plain)

    def boom(*args):
        raise AssertionError("cache hit expected")
    monkeypatch.setattr(model, "encode_text_features", boom)
    again = vita_clip.zero_shot_classifier(model, new_names, str(cache))
    assert torch.equal(again, feats)
    monkeypatch.undo()

    with torch.no_grad():  # other text weights: a new key, a new file
        model.textual.ln_final.bias.add_(0.1)
    changed = vita_clip.zero_shot_classifier(model, new_names, str(cache))
    assert len(list(cache.glob("text_features_*.pt"))) == 2
    assert not torch.allclose(changed, feats)
    vita_clip.zero_shot_classifier(model, new_names[:3], str(cache))
    assert len(list(cache.glob("text_features_*.pt"))) == 3
    assert not list(cache.glob(".tmp_*"))

    # evaluating on the swapped label set: logits over the new classes, text tower not run
    model.set_class_names(new_names, str(cache))
    calls = _count_text_calls(model)
    with torch.no_grad():
        logits = model(torch.randn(2, 2, 3, 32, 32))
    assert logits.shape == (2, 4) and not calls
    model.use_cached_text_features(None)
    with torch.no_grad():
        assert model(torch.randn(1, 2, 3, 32, 32)).shape == (1, 3)


def test_generic_context_transfers_to_new_names(tmp_path):
    model = tiny_model(text_prompt_CSC=False)
    model.eval()
    own = vita_clip.zero_shot_classifier(model, NAMES, None)
    with torch.no_grad():
        torch.testing.assert_close(own, model.class_text_features())
        new = model.encode_text_features(["archery", "surfing"])
    torch.testing.assert_close(new[0], own[0])  # same name, same learned context
    assert model.text_prompt_mode(["surfing"]) == "learned-generic"
