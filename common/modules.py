"""Helpers on torch modules that every layer needs."""
from __future__ import annotations

import torch.nn as nn

__all__ = ["unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel (``.module``) and/or torch.compile
    (``._orig_mod``) wrappers, whose state-dict keys carry no wrapper prefix."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model
