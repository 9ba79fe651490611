"""FLOPs and parameters of a model: one forward pass traced by fvcore.

Convention: one multiply-add counts as one FLOP (fvcore / thop, and the papers' GFLOPs), for
convolutions, linear layers, matrix products and attention. Element-wise work (GELU, gating
products, means, LayerNorm) is memory-bound and not counted unless ``elementwise=True`` (then one
FLOP per output element, LayerNorm 5 per element).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn

from .build import build_model_without_init, count_parameters
from .registry import model_family

__all__ = ["count_gflops", "config_cost"]

ELEMENTWISE_OPS = ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::gelu",
                   "aten::mean", "aten::softmax", "aten::sigmoid", "aten::exp")
VIEW_OPS = ("aten::unflatten", "aten::flatten", "aten::split_with_sizes", "aten::unbind",
            "aten::expand_as", "aten::repeat")  # shape changes: nothing to count
NORM_OPS = ("aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm",
            "aten::adaptive_avg_pool2d")


def _shape(value) -> list[int]:
    return list(value.type().sizes())


def _sdpa_flops(inputs: list, outputs: list) -> int:
    """scaled_dot_product_attention: Q K^T and A V, one multiply-add each per element."""
    q, k, v = (_shape(x) for x in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1]


def _baddbmm_flops(inputs: list, outputs: list) -> int:
    a, b = _shape(inputs[1]), _shape(inputs[2])
    return a[0] * a[1] * a[2] * b[2]


def count_gflops(model: nn.Module, video: torch.Tensor, elementwise: bool = False
                 ) -> tuple[float, dict[str, int]]:
    """GFLOPs of one forward pass on ``video`` and the ops fvcore saw but did not count."""
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer warnings
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.jit_handles import elementwise_flop_counter, norm_flop_counter

        analysis = FlopCountAnalysis(model, (video,))
        analysis.set_op_handle(**{"aten::scaled_dot_product_attention": _sdpa_flops,
                                  "aten::baddbmm": _baddbmm_flops})
        analysis.set_op_handle(**{op: None for op in VIEW_OPS})
        if elementwise:
            analysis.set_op_handle(**{op: elementwise_flop_counter(0, 1)
                                      for op in ELEMENTWISE_OPS})
            analysis.set_op_handle(**{"aten::layer_norm": norm_flop_counter(1)})
        else:
            for op in NORM_OPS:
                analysis._op_handles.pop(op, None)  # fvcore counts norms by default; None alone
                analysis.set_op_handle(op, None)    # only marks the op as ignored
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
        skipped = dict(analysis.unsupported_ops())
    return total / 1e9, skipped


def config_cost(cfg, elementwise: bool = False) -> dict:
    """Parameters and GFLOPs of one view (one clip) of the model a config builds.

    No weight file is read (the count does not depend on the weights); the clip is the model
    family's ``example_input`` at the config's DATA.NUM_FRAMES / DATA.IMG_SIZE. Returns
    ``{"params": int, "trainable_params": int, "gflops": float, "uncounted_ops": {op: calls}}``.
    """
    model = build_model_without_init(cfg)
    trainable, total = count_parameters(model)
    video = model_family(cfg.MODEL.TYPE).example_input(cfg, 1)
    gflops, skipped = count_gflops(model, video, elementwise)
    return {"params": total, "trainable_params": trainable, "gflops": gflops,
            "uncounted_ops": skipped}
