"""A line-by-line port of the official Video-FocalNet model, written from the spec (section 1).

Used only as the benchmark baseline (``tools/benchmark.py --compare-reference``) and in tests.
It deliberately keeps the reference's execution style and defects (einops re-layouts, the clone
before the temporal branch, intermediate tensors stored on ``self``, H/W set on blocks from
outside, frame count baked in at construction) because the point is to measure and check against
what the official code does. Do not use it for anything else.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.utils.checkpoint as checkpoint
from einops import rearrange
from timm.layers import DropPath, trunc_normal_


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU,
                 drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x


class SpatioTemporalFocalModulation(nn.Module):
    def __init__(self, dim, focal_window, focal_level, focal_factor=2, bias=True, proj_drop=0.0,
                 use_postln_in_modulation=False, normalize_modulator=False, num_frames=8):
        super().__init__()
        self.dim = dim
        self.focal_window = focal_window
        self.focal_level = focal_level
        self.focal_factor = focal_factor
        self.use_postln_in_modulation = use_postln_in_modulation
        self.normalize_modulator = normalize_modulator
        self.num_frames = num_frames

        self.f = nn.Linear(dim, 2 * dim + (self.focal_level + 1), bias=bias)
        self.h = nn.Conv2d(dim, dim, kernel_size=1, stride=1, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = nn.ModuleList()

        self.f_temporal = nn.Linear(dim, dim + (self.focal_level + 1), bias=bias)
        self.h_temporal = nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=bias)
        self.focal_layers_temporal = nn.ModuleList()

        self.kernel_sizes = []
        for k in range(self.focal_level):
            kernel_size = self.focal_factor * k + self.focal_window
            self.focal_layers.append(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=kernel_size, stride=1, groups=dim,
                          padding=kernel_size // 2, bias=False),
                nn.GELU()))
            self.focal_layers_temporal.append(nn.Sequential(
                nn.Conv1d(dim, dim, kernel_size=kernel_size, stride=1,
                          padding=kernel_size // 2, bias=False),
                nn.GELU()))
            self.kernel_sizes.append(kernel_size)
        if self.use_postln_in_modulation:
            self.ln = nn.LayerNorm(dim)

    def forward(self, x):
        """x: (B*T, H, W, C)"""
        C = x.shape[-1]
        H = x.shape[1]
        W = x.shape[2]

        # temporal branch
        x_temporal = torch.clone(x)
        x_temporal = rearrange(x_temporal, '(b t) h w c -> (b h w) t c', t=self.num_frames)
        x_temporal = self.f_temporal(x_temporal).permute(0, 2, 1).contiguous()
        ctx_temporal, self.gates_temporal = torch.split(x_temporal, (C, self.focal_level + 1), 1)
        ctx_all_temporal = 0
        for level in range(self.focal_level):
            ctx_temporal = self.focal_layers_temporal[level](ctx_temporal)
            ctx_all_temporal = ctx_all_temporal + ctx_temporal * self.gates_temporal[:, level:level + 1]
        ctx_global_temporal = self.act(ctx_temporal.mean(2, keepdim=True))
        ctx_all_temporal = ctx_all_temporal + ctx_global_temporal * self.gates_temporal[:, self.focal_level:]

        # spatial branch
        x = self.f(x).permute(0, 3, 1, 2).contiguous()
        q, ctx, self.gates = torch.split(x, (C, C, self.focal_level + 1), 1)
        ctx_all = 0
        for level in range(self.focal_level):
            ctx = self.focal_layers[level](ctx)
            ctx_all = ctx_all + ctx * self.gates[:, level:level + 1]
        ctx_global = self.act(ctx.mean(2, keepdim=True).mean(3, keepdim=True))
        ctx_all = ctx_all + ctx_global * self.gates[:, self.focal_level:]

        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
            ctx_all_temporal = ctx_all_temporal / (self.focal_level + 1)

        self.modulator = self.h(ctx_all)
        self.modulator_temporal = self.h_temporal(ctx_all_temporal)
        self.modulator_temporal = rearrange(self.modulator_temporal, '(b h w) c t -> (b t) c h w',
                                            h=H, w=W)

        x_out = q * self.modulator
        x_out = x_out * self.modulator_temporal
        x_out = x_out.permute(0, 2, 3, 1).contiguous()
        if self.use_postln_in_modulation:
            x_out = self.ln(x_out)
        x_out = self.proj(x_out)
        x_out = self.proj_drop(x_out)
        return x_out


class VideoFocalNetBlock(nn.Module):
    def __init__(self, dim, mlp_ratio=4.0, drop=0.0, drop_path=0.0, act_layer=nn.GELU,
                 norm_layer=nn.LayerNorm, focal_level=1, focal_window=3, use_layerscale=False,
                 layerscale_value=1e-4, use_postln=False, use_postln_in_modulation=False,
                 normalize_modulator=False, num_frames=8):
        super().__init__()
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.focal_window = focal_window
        self.focal_level = focal_level
        self.use_postln = use_postln
        self.num_frames = num_frames

        self.norm1 = norm_layer(dim)
        self.modulation = SpatioTemporalFocalModulation(
            dim, proj_drop=drop, focal_window=focal_window, focal_level=self.focal_level,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator, num_frames=self.num_frames)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        mlp_hidden_dim = int(dim * mlp_ratio)
        self.mlp = Mlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer,
                       drop=drop)

        self.gamma_1 = 1.0
        self.gamma_2 = 1.0
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dim), requires_grad=True)
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dim), requires_grad=True)
        self.H = None
        self.W = None

    def forward(self, x):
        H, W = self.H, self.W
        B, L, C = x.shape
        shortcut = x

        x = x if self.use_postln else self.norm1(x)
        x = x.view(B, H, W, C)
        x = self.modulation(x).view(B, H * W, C)
        x = x if not self.use_postln else self.norm1(x)

        x = shortcut + self.drop_path(self.gamma_1 * x)
        x = x + self.drop_path(self.gamma_2 * (self.norm2(self.mlp(x)) if self.use_postln
                                               else self.mlp(self.norm2(x))))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=(224, 224), patch_size=4, in_chans=3, embed_dim=96,
                 use_conv_embed=False, norm_layer=None, is_stem=False, tubelet_size=1):
        super().__init__()
        patch_size = (patch_size, patch_size)
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        if use_conv_embed:
            if is_stem:
                kernel_size, padding, stride = 7, 2, 4
            else:
                kernel_size, padding, stride = 3, 1, 2
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride,
                                  padding=padding)
        elif tubelet_size == 1:
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        else:
            self.proj = nn.Conv3d(in_chans, embed_dim,
                                  kernel_size=(tubelet_size,) + patch_size,
                                  stride=(tubelet_size,) + patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x):
        if self.tubelet_size == 1:
            x = self.proj(x)
        else:
            B = x.shape[0]
            x = self.proj(x.permute(0, 2, 1, 3, 4))
            x = x.permute(0, 2, 1, 3, 4)
            x = x.reshape(B * x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        H, W = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, H, W


class BasicLayer(nn.Module):
    def __init__(self, dim, out_dim, input_resolution, depth, mlp_ratio=4.0, drop=0.0,
                 drop_path=0.0, norm_layer=nn.LayerNorm, downsample=None, use_checkpoint=False,
                 focal_level=1, focal_window=1, use_conv_embed=False, use_layerscale=False,
                 layerscale_value=1e-4, use_postln=False, use_postln_in_modulation=False,
                 normalize_modulator=False, num_frames=8):
        super().__init__()
        self.dim = dim
        self.depth = depth
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            VideoFocalNetBlock(
                dim=dim, mlp_ratio=mlp_ratio, drop=drop,
                drop_path=drop_path[i] if isinstance(drop_path, list) else drop_path,
                norm_layer=norm_layer, focal_level=focal_level, focal_window=focal_window,
                use_layerscale=use_layerscale, layerscale_value=layerscale_value,
                use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator, num_frames=num_frames)
            for i in range(depth)])
        if downsample is not None:
            self.downsample = downsample(
                img_size=input_resolution, patch_size=2, in_chans=dim, embed_dim=out_dim,
                use_conv_embed=use_conv_embed, norm_layer=norm_layer, is_stem=False)
        else:
            self.downsample = None

    def forward(self, x, H, W):
        for blk in self.blocks:
            blk.H, blk.W = H, W
            if self.use_checkpoint:
                x = checkpoint.checkpoint(blk, x)
            else:
                x = blk(x)
        if self.downsample is not None:
            x = x.transpose(1, 2).reshape(x.shape[0], -1, H, W)
            x, Ho, Wo = self.downsample(x)
        else:
            Ho, Wo = H, W
        return x, Ho, Wo


class VideoFocalNet(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96,
                 depths=[2, 2, 6, 2], mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.1,
                 norm_layer=nn.LayerNorm, patch_norm=True, use_checkpoint=False,
                 focal_levels=[2, 2, 2, 2], focal_windows=[3, 3, 3, 3], use_conv_embed=False,
                 use_layerscale=False, layerscale_value=1e-4, use_postln=False,
                 use_postln_in_modulation=False, normalize_modulator=False, num_frames=8,
                 tubelet_size=1, **kwargs):
        super().__init__()
        self.num_layers = len(depths)
        embed_dim = [embed_dim * (2 ** i) for i in range(self.num_layers)]
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.patch_norm = patch_norm
        self.num_features = embed_dim[-1]
        self.mlp_ratio = mlp_ratio
        self.num_frames = num_frames // tubelet_size
        self.tubelet_size = tubelet_size

        self.patch_embed = PatchEmbed(
            img_size=(img_size, img_size), patch_size=patch_size, in_chans=in_chans,
            embed_dim=embed_dim[0], use_conv_embed=use_conv_embed,
            norm_layer=norm_layer if self.patch_norm else None, is_stem=True,
            tubelet_size=tubelet_size)
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]
        self.layers = nn.ModuleList()
        for i_layer in range(self.num_layers):
            layer = BasicLayer(
                dim=embed_dim[i_layer],
                out_dim=embed_dim[i_layer + 1] if (i_layer < self.num_layers - 1) else None,
                input_resolution=None, depth=depths[i_layer], mlp_ratio=self.mlp_ratio,
                drop=drop_rate, drop_path=dpr[sum(depths[:i_layer]):sum(depths[:i_layer + 1])],
                norm_layer=norm_layer,
                downsample=PatchEmbed if (i_layer < self.num_layers - 1) else None,
                focal_level=focal_levels[i_layer], focal_window=focal_windows[i_layer],
                use_conv_embed=use_conv_embed, use_checkpoint=use_checkpoint,
                use_layerscale=use_layerscale, layerscale_value=layerscale_value,
                use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator, num_frames=self.num_frames)
            self.layers.append(layer)
        self.norm = norm_layer(self.num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward_features(self, x):
        if self.tubelet_size == 1:
            B, T, C, H, W = x.shape
            x = x.reshape(-1, C, H, W)
        x, H, W = self.patch_embed(x)
        x = self.pos_drop(x)
        for layer in self.layers:
            x, H, W = layer(x, H, W)
        x = self.norm(x)
        x = self.avgpool(x.transpose(1, 2))
        x = torch.flatten(x, 1)
        return x

    def forward(self, x):
        B = x.shape[0]
        x = self.forward_features(x)
        x = x.view(B, self.num_frames, -1)
        x = x.mean(dim=1)
        x = self.head(x)
        return x
