"""Video-FocalNet (Wasim et al., ICCV 2023): a four-stage FocalNet applied to frames, with
spatio-temporal focal modulation as the token mixer.

Layout: the model takes float video ``(B, T, C, H, W)``; frames are folded into the batch
(``b * T + t``, time fastest) and tokens travel between blocks channels-last as
``(B*T, H, W, C)``. The frame count is read from the input and passed down as an argument, so one
model runs clips of any length. Parameter names are those of the official checkpoints
(``checkpoint["model"]`` loads with ``strict=True``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch.utils.checkpoint import checkpoint

from .checkpoint import checkpoint_filter_fn
from .modulation import ST_DESIGNS, build_modulation
from .pretrained import drop_loaded_state_dict, released_cfgs, with_released_weights

__all__ = ["PatchEmbed", "VideoFocalNetBlock", "VideoFocalNetStage", "VideoFocalNet",
           "VARIANTS", "IMAGENET_MEAN", "IMAGENET_STD"]

# The pixel statistics (0..1 RGB) the ImageNet FocalNet initialisation was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Named variants: everything else (levels, windows, ...) is shared.
VARIANTS = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2)),
}


class PatchEmbed(nn.Module):
    """Stem (``is_stem``) or between-stage downsampler: a strided convolution + optional LayerNorm.

    * stem: Conv2d(kernel=stride=patch) per frame; with ``tubelet_size > 1`` a Conv3d of kernel and
      stride ``(tubelet, patch, patch)`` over the clip; with ``use_conv_embed`` Conv2d(7, s4, p2).
    * downsampler: Conv2d(2, s2), or Conv2d(3, s2, p1) with ``use_conv_embed``.
    Input: stem ``(B, T, C, H, W)``; downsampler ``(N, H, W, C)``. Output ``(N, H', W', C')``.
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 use_conv_embed: bool = False, is_stem: bool = False, tubelet_size: int = 1,
                 norm: bool = True):
        super().__init__()
        self.is_stem = is_stem
        self.tubelet_size = tubelet_size
        if tubelet_size > 1:
            if use_conv_embed or not is_stem:
                raise ValueError("tubelets are a stem option and cannot be combined with "
                                 "MODEL.FOCAL.USE_CONV_EMBED")
            size = (tubelet_size, patch_size, patch_size)
            self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=size, stride=size)
        elif use_conv_embed:
            kernel, stride, padding = (7, 4, 2) if is_stem else (3, 2, 1)
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel, stride=stride, padding=padding)
        else:
            self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_stem:
            x = self.proj(x.permute(0, 3, 1, 2))  # channels-last view in, channels-last out
            x = x.permute(0, 2, 3, 1)
        elif self.tubelet_size > 1:
            x = self.proj(x.transpose(1, 2))  # (B, C, T, H, W) -> (B, C0, T', H', W')
            x = x.permute(0, 2, 3, 4, 1).flatten(0, 1)  # (B*T', H', W', C0), b-major
        else:
            x = self.proj(x.flatten(0, 1)).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        return x


class VideoFocalNetBlock(nn.Module):
    """norm -> focal modulation -> residual; norm -> MLP -> residual (pre-norm by default).

    ``use_postln`` moves each norm after its sub-layer; ``use_layerscale`` adds learnable
    per-channel scales ``gamma_1``/``gamma_2``. Drop path drops whole frames (the batch axis is
    ``B*T``), as in the reference.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0,
                 focal_level: int = 2, focal_window: int = 3, use_layerscale: bool = False,
                 layerscale_value: float = 1e-4, use_postln: bool = False,
                 use_postln_in_modulation: bool = False, normalize_modulator: bool = False,
                 st_design: str = "parallel"):
        super().__init__()
        self.use_postln = use_postln
        self.norm1 = nn.LayerNorm(dim)
        self.modulation = build_modulation(
            st_design, dim, focal_level=focal_level, focal_window=focal_window, proj_drop=drop,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.use_layerscale = use_layerscale
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dim))
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dim))

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``x (B*T, H, W, C)`` -> same shape; ``num_frames`` is T."""
        if self.use_postln:
            y = self.norm1(self.modulation(x, num_frames))
        else:
            y = self.modulation(self.norm1(x), num_frames)
        if self.use_layerscale:
            y = self.gamma_1 * y
        x = x + self.drop_path(y)
        y = self.norm2(self.mlp(x)) if self.use_postln else self.mlp(self.norm2(x))
        if self.use_layerscale:
            y = self.gamma_2 * y
        return x + self.drop_path(y)


class VideoFocalNetStage(nn.Module):
    """Blocks of one resolution, then (stages 0..n-2) the downsampler (reference: ``BasicLayer``)."""

    def __init__(self, dim: int, out_dim: int | None, depth: int, drop_path: Sequence[float],
                 use_conv_embed: bool = False, **block_kwargs):
        super().__init__()
        self.grad_checkpointing = False
        self.blocks = nn.ModuleList(
            VideoFocalNetBlock(dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth))
        self.downsample = (PatchEmbed(2, dim, out_dim, use_conv_embed=use_conv_embed, is_stem=False)
                           if out_dim is not None else None)

    def forward_blocks(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, num_frames, use_reentrant=False)
            else:
                x = block(x, num_frames)
        return x

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.forward_blocks(x, num_frames)
        return x if self.downsample is None else self.downsample(x)


class VideoFocalNet(nn.Module):
    """Video-FocalNet classifier. ``forward(video (B, T, C, H, W)) -> logits (B, num_classes)``.

    ``num_frames`` and ``img_size`` are the clip size the model is built and counted for; the
    forward pass reads the real size from its input (T must be a multiple of ``tubelet_size``,
    H and W multiples of the total stride).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3,
                 num_classes: int = 400, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 mlp_ratio: float = 4.0, drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 patch_norm: bool = True, focal_levels: Sequence[int] = (2, 2, 2, 2),
                 focal_windows: Sequence[int] = (3, 3, 3, 3), use_conv_embed: bool = False,
                 use_layerscale: bool = False, layerscale_value: float = 1e-4,
                 use_postln: bool = False, use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False, num_frames: int = 8, tubelet_size: int = 1,
                 st_design: str = "parallel", use_checkpoint: bool = False, **kwargs):
        super().__init__()
        kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
        if kwargs:
            raise TypeError(f"VideoFocalNet got unknown arguments: {sorted(kwargs)}")
        num_stages = len(depths)
        if len(focal_levels) != num_stages or len(focal_windows) != num_stages:
            raise ValueError(f"focal_levels {list(focal_levels)} and focal_windows "
                             f"{list(focal_windows)} need one value per stage ({num_stages})")
        if st_design not in ST_DESIGNS:
            raise ValueError(f"unknown st_design {st_design!r}; choose one of {ST_DESIGNS}")
        if tubelet_size < 1 or num_frames % tubelet_size:
            raise ValueError(f"num_frames {num_frames} must be a multiple of tubelet_size "
                             f"{tubelet_size}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_frames = num_frames
        self.img_size = img_size
        self.tubelet_size = tubelet_size
        self.st_design = st_design
        self.embed_dims = [embed_dim * 2 ** i for i in range(num_stages)]
        self.num_features = self.head_hidden_size = self.embed_dims[-1]
        self.stride = (4 if use_conv_embed else patch_size) * 2 ** (num_stages - 1)
        if img_size % self.stride:
            raise ValueError(f"img_size {img_size} is not a multiple of the total stride "
                             f"{self.stride}")

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, use_conv_embed,
                                      is_stem=True, tubelet_size=tubelet_size, norm=patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [r.item() for r in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(VideoFocalNetStage(
                self.embed_dims[i], self.embed_dims[i + 1] if i < num_stages - 1 else None, depth,
                drop_path=rates[start:start + depth], use_conv_embed=use_conv_embed,
                mlp_ratio=mlp_ratio, drop=drop_rate, focal_level=focal_levels[i],
                focal_window=focal_windows[i], use_layerscale=use_layerscale,
                layerscale_value=layerscale_value, use_postln=use_postln,
                use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator, st_design=st_design))
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        self.set_grad_checkpointing(use_checkpoint)

    # -- timm-style API ---------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Full names of parameters kept out of weight decay: the layer scales.

        (Norms and biases are 1-D and skipped by the optimizer builder anyway. The reference
        returned the keyword '' here, which matched every parameter: no decay at all.)
        """
        return {n for n, _ in self.named_parameters() if n.endswith(("gamma_1", "gamma_2"))}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            _init_weights(self.head)

    def _frames(self, x: torch.Tensor) -> int:
        if x.ndim != 5 or x.shape[2] != self.in_chans:
            raise ValueError(f"Video-FocalNet takes video (B, T, {self.in_chans}, H, W); got shape "
                             f"{tuple(x.shape)}")
        frames, height, width = x.shape[1], x.shape[3], x.shape[4]
        if frames % self.tubelet_size:
            raise ValueError(f"clip of {frames} frames cannot be split into tubelets of "
                             f"{self.tubelet_size} frames (MODEL.TUBELET_SIZE)")
        if height % self.stride or width % self.stride:
            raise ValueError(f"frame size {height}x{width} is not a multiple of the total stride "
                             f"{self.stride} (DATA.IMG_SIZE)")
        return frames // self.tubelet_size

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, object]:
        """Every conformance tensor of one forward pass, token layout ``(B*T', h*w, C)``.

        Keys: patch_embed_output, stage_outputs_pre_downsample (last block of each stage),
        stage_outputs (after that stage's downsampler), frame_features ``(B*T', C)``,
        features ``(B, C)`` (head input) and logits.
        """
        num_frames = self._frames(x)
        x = self.pos_drop(self.patch_embed(x))
        out: dict[str, object] = {"patch_embed_output": x.flatten(1, 2),
                                  "stage_outputs": [], "stage_outputs_pre_downsample": []}
        for stage in self.layers:
            x = stage.forward_blocks(x, num_frames)
            out["stage_outputs_pre_downsample"].append(x.flatten(1, 2))
            if stage.downsample is not None:
                x = stage.downsample(x)
            out["stage_outputs"].append(x.flatten(1, 2))
        x = self.norm(x)
        frame_features = x.mean((1, 2))
        features = frame_features.unflatten(0, (-1, num_frames)).mean(1)
        out.update(frame_features=frame_features, features=features, logits=self.head(features))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised last-stage tokens, ``(B, T', h, w, C)``."""
        num_frames = self._frames(x)
        x = self.pos_drop(self.patch_embed(x))
        for stage in self.layers:
            x = stage(x, num_frames)
        x = self.norm(x)
        return x.unflatten(0, (-1, num_frames))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean over tokens per frame, then over frames (reference order), then the head."""
        x = x.mean((2, 3)).mean(1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    # Reference init: linear layers trunc-normal(0.02) with zero bias, LayerNorm 1/0; convolutions
    # (temporal ones included) keep PyTorch's default.
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# -- timm registration ------------------------------------------------------------------------
def _cfg(**kwargs) -> dict:
    return {"url": "", "num_classes": 400, "input_size": (3, 224, 224),
            "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": 224 / 256,
            "interpolation": "bilinear", "first_conv": "patch_embed.proj", "classifier": "head",
            **kwargs}


def _create(variant: str, pretrained: bool = False, **kwargs) -> VideoFocalNet:
    size = variant.rsplit("_", 1)[-1]
    if pretrained:  # released weights by tag (video_focalnet/pretrained.py)
        kwargs["pretrained_cfg"] = with_released_weights(
            variant, kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None))
    model = build_model_with_cfg(VideoFocalNet, variant, pretrained,
                                 pretrained_filter_fn=checkpoint_filter_fn,
                                 **{**VARIANTS[size], **kwargs})
    drop_loaded_state_dict(model)
    return model


# Released tags first (the first tag of an architecture is its default), then ".untrained".
default_cfgs = generate_default_cfgs({**released_cfgs(_cfg),
                                      **{f"video_focalnet_{size}.untrained": _cfg()
                                         for size in VARIANTS}})


@register_model
def video_focalnet_tiny(pretrained: bool = False, **kwargs) -> VideoFocalNet:
    """Video-FocalNet-T: embed 96, depths 2-2-6-2 (49.6 M params with 400 classes)."""
    return _create("video_focalnet_tiny", pretrained=pretrained, **kwargs)


@register_model
def video_focalnet_small(pretrained: bool = False, **kwargs) -> VideoFocalNet:
    """Video-FocalNet-S: embed 96, depths 2-2-18-2 (88.7 M params with 400 classes)."""
    return _create("video_focalnet_small", pretrained=pretrained, **kwargs)


@register_model
def video_focalnet_base(pretrained: bool = False, **kwargs) -> VideoFocalNet:
    """Video-FocalNet-B: embed 128, depths 2-2-18-2 (157.4 M params with 400 classes)."""
    return _create("video_focalnet_base", pretrained=pretrained, **kwargs)
