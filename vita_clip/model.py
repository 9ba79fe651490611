"""Vita-CLIP (Wasim et al., CVPR 2023): CLIP ViT video encoder with global/local/summary prompts
and a CoOp-style learned text context; logits = exp(logit_scale) * cos(video, class text).

Input is float video (B, T, C, H, W) like every model of this repository; the official code takes
(B, C, T, H, W) and ``forward`` converts at the boundary.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from . import tokenizer as tk
from .clip import CLIPTextEncoder, CLIPVisionEncoder, count_parameters
from .prompts import TextPromptLearner
from .weights import load_clip_weights

logger = logging.getLogger(__name__)

__all__ = ["VitaCLIP", "TRAINABLE_VISUAL_KEYWORDS"]

# a visual parameter is trained iff its name contains one of these (official rule; spec section 2)
TRAINABLE_VISUAL_KEYWORDS = ("summary", "local", "global", "time_embed")


class VitaCLIP(nn.Module):
    """The full model. Constructor arguments are the official ones, except that class names are
    passed as a list, the backbone as a path or a state dict, and zero-shot features as a
    tensor or a path.

    Text side, by configuration:
    * text prompt learning on: learned context + class names through the frozen text tower;
    * off, zero-shot evaluation on: precomputed features [C, E] (plain attribute, not a buffer);
    * off otherwise: plain class-name prompts through the frozen text tower.
    """

    def __init__(self, class_names: Sequence[str] = (), backbone=None,
                 input_size: Tuple[int, int] = (224, 224), num_frames: int = 8,
                 feature_dim: int = 768, patch_size: Tuple[int, int] = (16, 16),
                 num_heads: int = 12, num_layers: int = 12, mlp_factor: float = 4.0,
                 embed_dim: int = 512, use_summary_token: bool = False,
                 use_local_prompts: bool = False, use_global_prompts: bool = False,
                 num_global_prompts: int = 8, use_text_prompt_learning: bool = False,
                 text_context_length: int = 77, text_vocab_size: int = 49408,
                 text_transformer_width: int = 512, text_transformer_heads: int = 8,
                 text_transformer_layers: int = 12, text_num_prompts: int = 8,
                 text_prompt_pos: str = "end", text_prompt_init: str = "",
                 text_prompt_CSC: bool = False, zeroshot_evaluation: bool = False,
                 zeroshot_text_features=None):
        super().__init__()
        self.num_frames = num_frames
        self.class_names = [str(n) for n in class_names]
        self.use_text_prompt_learning = use_text_prompt_learning
        self.zeroshot_evaluation = zeroshot_evaluation
        self.text_context_length = text_context_length
        self.text_prompt_settings = dict(num_prompts=text_num_prompts, position=text_prompt_pos,
                                         init=text_prompt_init, csc=bool(text_prompt_CSC))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        self.visual = CLIPVisionEncoder(
            input_size=input_size, num_frames=num_frames, feature_dim=feature_dim,
            patch_size=patch_size, num_heads=num_heads, num_layers=num_layers,
            mlp_factor=mlp_factor, embed_dim=embed_dim, use_summary_token=use_summary_token,
            use_local_prompts=use_local_prompts, use_global_prompts=use_global_prompts,
            num_global_prompts=num_global_prompts)
        # the precomputed-features path of the reference has no text tower
        self.uses_precomputed_text = zeroshot_evaluation and not use_text_prompt_learning
        if zeroshot_evaluation and use_text_prompt_learning:
            logger.warning("MODEL.VITA.ZEROSHOT_EVALUATION is ignored while text prompt learning "
                           "is on (as in the reference): the learned prompts are used")
        if not self.uses_precomputed_text:
            self.textual = CLIPTextEncoder(
                embed_dim=embed_dim, context_length=text_context_length,
                vocab_size=text_vocab_size, transformer_width=text_transformer_width,
                transformer_heads=text_transformer_heads,
                transformer_layers=text_transformer_layers)
        self.text_features = None
        if self.uses_precomputed_text:
            self.text_features = _load_features(zeroshot_text_features)
        self.backbone_report = None
        if backbone is not None:
            self.backbone_report = load_clip_weights(self, backbone)
            logger.info("Vita-CLIP backbone: %s", self.backbone_report.summary())
        if use_text_prompt_learning:
            self.prompt_learner = TextPromptLearner(
                self.class_names, self.textual.token_embedding, num_prompts=text_num_prompts,
                init_words=text_prompt_init, csc=text_prompt_CSC, position=text_prompt_pos,
                context_length=text_context_length)
        elif not self.uses_precomputed_text:
            if not self.class_names:
                raise ValueError("Vita-CLIP needs class names (DATA.LABEL_LIST) unless "
                                 "MODEL.VITA.ZEROSHOT_EVALUATION uses precomputed features")
            self.register_buffer("class_tokens", tk.tokenize(
                [tk.clean_class_name(n) for n in self.class_names], text_context_length),
                persistent=False)
            self.class_tokens_length = tk.text_length(self.class_tokens)  # fixed with them
        self._freeze()
        self._override_text = None  # features set by use_cached_text_features()
        self._text_cache = None  # (key, features) while the text side is unchanged

    # ----------------------------------------------------------------------------------------
    # parameters
    # ----------------------------------------------------------------------------------------
    def _freeze(self) -> None:
        for name, param in self.visual.named_parameters():
            param.requires_grad = any(k in name for k in TRAINABLE_VISUAL_KEYWORDS)
        if hasattr(self, "textual"):
            self.textual.requires_grad_(False)

    def parameter_counts(self) -> Tuple[int, int]:
        """(trainable, total) parameters."""
        return count_parameters(self)

    def load_backbone(self, source) -> "BackboneReport":  # noqa: F821
        """Load CLIP weights (path or state dict; OpenAI or reference names) strictly and
        refresh the prompt template embeddings from the new token table."""
        report = load_clip_weights(self, source)
        if hasattr(self, "prompt_learner"):
            self.prompt_learner.refresh_embeddings(self.textual.token_embedding)
        self._text_cache = None
        return report

    def no_weight_decay(self):
        """Parameter names usually kept out of weight decay (prompts, time embedding,
        logit scale); the reference decayed everything, the engine decides."""
        names = {"logit_scale", "visual.time_embed", "visual.cls_token", "visual.pos_embed"}
        for name, _ in self.named_parameters():
            if "prompts" in name or name.endswith("prompt_learner.ctx"):
                names.add(name)
        return names

    def no_weight_decay_keywords(self):
        """Name fragments for norms and biases (timm convention)."""
        return {"norm", "ln_", "bias", "summary_ln"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.grad_checkpointing = enable
        if hasattr(self, "textual"):
            self.textual.grad_checkpointing = enable

    def train(self, mode: bool = True):
        if mode != self.training:  # eval() every validation loop keeps the cache
            self._text_cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache = None
        return super()._load_from_state_dict(*args, **kwargs)

    # ----------------------------------------------------------------------------------------
    # text side
    # ----------------------------------------------------------------------------------------
    def _text_side_tensors(self):
        tensors = []
        for owner in ("textual", "prompt_learner"):
            module = getattr(self, owner, None)
            if module is not None:
                tensors.extend(module.parameters())
                tensors.extend(module.buffers())
        return tensors

    def _compute_text_features(self) -> torch.Tensor:
        # the cut lengths are plain ints fixed with the token ids: no data-dependent shape
        # under torch.compile
        if self.use_text_prompt_learning:
            learner = self.prompt_learner
            return self.textual(learner(), learner.tokenized_prompts, learner.text_length)
        return self.textual.encode_tokens(self.class_tokens, self.class_tokens_length)

    def class_text_features(self) -> torch.Tensor:
        """Un-normalised text features [C, E] of the model's own classes.

        When no gradient can reach them (no grad mode, or nothing trainable on the text side)
        they are computed once and reused until a text-side tensor changes (checked through
        the tensors' version counters) or train()/load_state_dict() is called.
        """
        if self._override_text is not None:
            return self._override_text
        if self.uses_precomputed_text:
            return self.text_features
        tensors = self._text_side_tensors()
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if needs_grad or torch.compiler.is_compiling():
            # (the cache's key reads tensor versions: data that would break a compiled graph)
            return self._compute_text_features()
        # dtype/device changes (model.double(), .to()) and autocast change the result too
        device = tensors[0].device
        key = (torch.is_inference_mode_enabled(), tensors[0].dtype, device,
               torch.is_autocast_enabled(device.type)) + tuple((id(t), t._version) for t in tensors)
        if self._text_cache is not None and self._text_cache[0] == key:
            return self._text_cache[1]
        with torch.no_grad():
            features = self._compute_text_features()
        self._text_cache = (key, features)
        return features

    @torch.no_grad()
    def encode_text_features(self, class_names: Sequence[str]) -> torch.Tensor:
        """Un-normalised text features [C, E] for any class names.

        * the model's own class list with learned prompts: exactly the training-time features;
        * generic (not class-specific) learned context: that context with the new names;
        * class-specific context or no prompt learning: plain class-name prompts ("class-only")
          through the frozen CLIP text tower.
        """
        if not hasattr(self, "textual"):
            raise ValueError("this model has no text tower (MODEL.VITA.ZEROSHOT_EVALUATION with "
                             "precomputed features); build it with USE_TEXT_PROMPT_LEARNING or "
                             "ZEROSHOT_EVALUATION False to encode new class names")
        class_names = [str(n) for n in class_names]
        learner = getattr(self, "prompt_learner", None)
        if learner is not None and class_names == self.class_names:
            return self.textual(learner(), learner.tokenized_prompts)
        if learner is not None and not learner.csc:
            prompts, tokens = learner.prompts_for(class_names, self.textual.token_embedding)
            return self.textual(prompts, tokens)
        tokens = tk.tokenize([tk.clean_class_name(n) for n in class_names],
                             self.text_context_length)
        return self.textual.encode_tokens(tokens)

    def text_prompt_mode(self, class_names: Sequence[str]) -> str:
        """Which prompt encode_text_features() uses for these names (part of the cache key)."""
        learner = getattr(self, "prompt_learner", None)
        if learner is not None and [str(n) for n in class_names] == self.class_names:
            return "learned"
        if learner is not None and not learner.csc:
            return "learned-generic"
        return "class-only"

    def use_cached_text_features(self, features: Optional[torch.Tensor],
                                 class_names: Optional[Sequence[str]] = None) -> None:
        """Use fixed text features [C, E] (e.g. another label set) instead of the text side;
        None restores the model's own. Kept as a plain attribute, cast in forward."""
        if features is not None and features.dim() != 2:
            raise ValueError(f"text features must be [classes, embed_dim], got "
                             f"{tuple(features.shape)}")
        self._override_text = None if features is None else features.detach()
        self.eval_class_names = list(class_names) if class_names is not None else None

    def set_class_names(self, class_names: Sequence[str], cache_dir: Optional[str] = None):
        """Evaluate on another label set: encode (or load from the disk cache) its features."""
        from .cache import zero_shot_classifier
        features = zero_shot_classifier(self, class_names, cache_dir)
        self.use_cached_text_features(features, class_names)
        return features

    # ----------------------------------------------------------------------------------------
    # forward
    # ----------------------------------------------------------------------------------------
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Un-normalised video embeddings [B, E] of float video (B, T, C, H, W)."""
        if video.dim() != 5:
            raise ValueError(f"Vita-CLIP takes video (B, T, C, H, W), got shape "
                             f"{tuple(video.shape)}")
        return self.visual(video.transpose(1, 2))

    def forward(self, video: torch.Tensor, return_features: bool = False):
        """Logits [B, C] for video (B, T, C, H, W); with return_features also the L2-normalised
        video [B, E] and text [C, E] features."""
        video_features = self.encode_video(video)
        text_features = self.class_text_features()
        text_features = text_features.to(device=video_features.device,
                                         dtype=video_features.dtype)
        video_features = video_features / video_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * video_features @ text_features.t()
        if return_features:
            return logits, video_features, text_features
        return logits


def _load_features(source) -> torch.Tensor:
    if source is None or (isinstance(source, str) and not source):
        raise ValueError("MODEL.VITA.ZEROSHOT_EVALUATION without text prompt learning needs "
                         "MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH (a [classes, embed_dim] tensor)")
    if isinstance(source, torch.Tensor):
        features = source
    else:
        data = torch.load(source, map_location="cpu", weights_only=True)
        if isinstance(data, dict):
            data = data.get("features", data.get("text_features"))
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"{source}: expected a tensor [classes, embed_dim] (or a dict with "
                             f"'features'), got {type(data).__name__}")
        features = data
    if features.dim() != 2:
        raise ValueError(f"zero-shot text features must be [classes, embed_dim], got "
                         f"{tuple(features.shape)}")
    return features.detach()


def as_class_names(value: Union[str, Sequence[str]]) -> list:
    return tk.read_class_names(value) if isinstance(value, str) else list(value)
