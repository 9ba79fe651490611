"""Vita-CLIP (Wasim et al., CVPR 2023): CLIP ViT video encoder with global/local/summary prompts
and a CoOp-style learned text context; logits = exp(logit_scale) * cos(video, class text).

Input is float video (B, T, C, H, W) like every model of this repository; the official code takes
(B, C, T, H, W) and ``forward`` converts at the boundary.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from common.safe_load import safe_torch_load

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

    Nothing is cached between calls: ``forward(video)`` encodes the class text every time (as
    training needs); to score many videos, compute ``encode_text()`` once and pass it as
    ``forward(video, text_features=...)`` (the engine's evaluator does).
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
            self.text_features = load_text_features(zeroshot_text_features)
            if self.class_names and len(self.class_names) != self.text_features.shape[0]:
                raise ValueError(f"the zero-shot text features hold "
                                 f"{self.text_features.shape[0]} classes but "
                                 f"{len(self.class_names)} class names were given")
        self.backbone_report = None
        if backbone is not None:
            self.backbone_report = load_clip_weights(self, backbone)
        if use_text_prompt_learning:
            self.prompt_learner = TextPromptLearner(
                self.class_names, self.textual.token_embedding, num_prompts=text_num_prompts,
                init_words=text_prompt_init, csc=text_prompt_CSC, position=text_prompt_pos,
                context_length=text_context_length)
        elif not self.uses_precomputed_text:
            if not self.class_names:
                raise ValueError("Vita-CLIP needs class names unless MODEL.VITA."
                                 "ZEROSHOT_EVALUATION uses precomputed features")
            self.register_buffer("class_tokens", tk.tokenize(
                [tk.clean_class_name(n) for n in self.class_names], text_context_length),
                persistent=False)
            self.class_tokens_length = tk.text_length(self.class_tokens)  # fixed with them
        self._freeze()

    @property
    def num_classes(self) -> int:
        """Number of classes the model scores by default (its own class list)."""
        if self.uses_precomputed_text:
            return int(self.text_features.shape[0])
        return len(self.class_names)

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
        return report

    def no_weight_decay(self):
        """Parameter names kept out of weight decay: prompts, learned text contexts, positional
        and time embeddings, the class token, the logit scale (the reference decayed everything;
        TRAIN.OPTIMIZER.SKIP_DECAY decides whether this list is used)."""
        names = {"logit_scale", "visual.time_embed", "visual.cls_token", "visual.pos_embed",
                 "textual.positional_embedding"}
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

    # ----------------------------------------------------------------------------------------
    # text side (stateless: every call computes from the current weights)
    # ----------------------------------------------------------------------------------------
    def text_prompt_mode(self, class_names: Optional[Sequence[str]] = None) -> str:
        """How ``encode_text(class_names)`` turns names into features:

        * ``"learned"``: the model's own classes through its learned prompts;
        * ``"learned-generic"``: other names with the learned generic (not class-specific)
          context;
        * ``"class-only"``: plain class-name prompts through the frozen text tower (a
          class-specific context belongs to the training classes; or no prompt learning);
        * ``"precomputed"``: the features file of the official zero-shot path (own classes).
        """
        own = class_names is None or [str(n) for n in class_names] == self.class_names
        if not hasattr(self, "textual"):
            if own:
                return "precomputed"
            raise ValueError("this model has no text tower (MODEL.VITA.ZEROSHOT_EVALUATION with "
                             "precomputed features); build it with USE_TEXT_PROMPT_LEARNING or "
                             "ZEROSHOT_EVALUATION False to encode new class names")
        learner = getattr(self, "prompt_learner", None)
        if learner is None:
            return "class-only"
        if own:
            return "learned"
        return "class-only" if learner.csc else "learned-generic"

    def encode_text(self, class_names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Un-normalised class text features [C, E].

        ``class_names`` None (or the model's own list): its own classes, exactly the features
        training uses (gradients reach the learned context unless called under no_grad). Other
        names: see ``text_prompt_mode``. Callers that score many videos against the same classes
        compute this once and pass it to ``forward(video, text_features=...)``.
        """
        mode = self.text_prompt_mode(class_names)
        if mode == "precomputed":
            return self.text_features
        if mode == "learned":
            # the cut lengths are Python ints fixed with the token ids: read from the ids inside
            # a torch.compile graph they would be a data-dependent shape (a graph break)
            learner = self.prompt_learner
            return self.textual(learner(), learner.tokenized_prompts, learner.text_length)
        if mode == "learned-generic":
            prompts, tokens = self.prompt_learner.prompts_for(class_names,
                                                              self.textual.token_embedding)
            return self.textual(prompts, tokens)
        if class_names is None:  # class-only prompts of the own classes: tokenised once
            return self.textual.encode_tokens(self.class_tokens, self.class_tokens_length)
        tokens = tk.tokenize([tk.clean_class_name(str(n)) for n in class_names],
                             self.text_context_length)
        return self.textual.encode_tokens(tokens)

    def text_state_dict(self, class_names: Optional[Sequence[str]] = None) -> dict:
        """The tensors ``encode_text(class_names)`` reads (for a cache key of its result)."""
        mode = self.text_prompt_mode(class_names)
        if mode == "precomputed":
            return {"text_features": self.text_features}
        tensors = {f"textual.{k}": v for k, v in self.textual.state_dict().items()}
        if mode == "learned":
            tensors.update((f"prompt_learner.{k}", v)
                           for k, v in self.prompt_learner.state_dict().items())
        elif mode == "learned-generic":
            tensors["prompt_learner.ctx"] = self.prompt_learner.ctx
        return tensors

    @property
    def text_config(self) -> dict:
        """Settings that change ``encode_text`` without changing a tensor (for a cache key)."""
        return dict(self.text_prompt_settings, context_length=self.text_context_length)

    @staticmethod
    def num_classes_in(state_dict) -> Optional[int]:
        """How many classes the class-dependent text tensors of a Vita-CLIP state dict hold
        (a model must be built with that many names to load it); None when it has none."""
        for key, value in state_dict.items():
            if key.endswith("prompt_learner.token_prefix"):
                return int(value.shape[0])
        return None

    # ----------------------------------------------------------------------------------------
    # forward
    # ----------------------------------------------------------------------------------------
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Un-normalised video embeddings [B, E] of float video (B, T, C, H, W)."""
        if video.dim() != 5:
            raise ValueError(f"Vita-CLIP takes video (B, T, C, H, W), got shape "
                             f"{tuple(video.shape)}")
        return self.visual(video.transpose(1, 2))

    def forward(self, video: torch.Tensor, text_features: Optional[torch.Tensor] = None,
                return_features: bool = False):
        """Logits [B, C] for video (B, T, C, H, W) against ``text_features`` [C, E] (default:
        ``encode_text()``, the own classes); with return_features also the L2-normalised video
        [B, E] and text [C, E] features."""
        video_features = self.encode_video(video)
        if text_features is None:
            text_features = self.encode_text()
        elif text_features.dim() != 2:
            raise ValueError(f"text features must be [classes, embed_dim], got "
                             f"{tuple(text_features.shape)}")
        text_features = text_features.to(device=video_features.device,
                                         dtype=video_features.dtype)
        video_features = video_features / video_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * video_features @ text_features.t()
        if return_features:
            return logits, video_features, text_features
        return logits


def load_text_features(source) -> torch.Tensor:
    """Zero-shot text features [classes, embed_dim]: a tensor, or a file holding one (or a dict
    with 'features'), read without executing code."""
    if source is None or (isinstance(source, str) and not source):
        raise ValueError("MODEL.VITA.ZEROSHOT_EVALUATION without text prompt learning needs "
                         "MODEL.VITA.ZEROSHOT_TEXT_FEATURES_PATH (a [classes, embed_dim] tensor)")
    if isinstance(source, torch.Tensor):
        features = source
    else:
        data = safe_torch_load(source, what="zero-shot text features")
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
