"""Reading CLIP weights safely and mapping them onto Vita-CLIP's parameter names.

Accepted backbone files (MODEL.VITA.BACKBONE_PATH):
* OpenAI's TorchScript archive (``ViT-B-16.pt``): a zip whose ``data.pkl`` holds the module tree.
  It is read by a restricted unpickler that only rebuilds tensors; no code from the file runs
  (``torch.jit.load`` would execute the archive's TorchScript code).
* a plain OpenAI/open_clip state dict (``visual.conv1.weight`` ...), optionally under ``state_dict``
  / ``model`` / ``module.``;
* the reference's converted backbone (``visual.patch_embed.proj.weight`` ...).

Loading is strict on the CLIP subset of the model: every CLIP parameter the model has must come
from the file, every tensor of the file must have a destination, shapes must agree.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Union

import torch
import torch.nn as nn
from timm.models import clean_state_dict

from common.safe_load import load_error, safe_torch_load, unsafe_error

logger = logging.getLogger(__name__)

__all__ = ["read_torchscript_state_dict", "read_checkpoint", "openai_to_vita",
           "clip_param_names", "load_clip_weights", "BackboneReport", "BackboneError",
           "checkpoint_filter_fn"]

# OpenAI tensors with no destination in Vita-CLIP (model hyper-parameters, the causal mask)
_IGNORED_OPENAI = re.compile(r"^(input_resolution|context_length|vocab_size|.*attn_mask)$")


# ------------------------------------------------------------------------------------------
# TorchScript archives without torch.jit.load
# ------------------------------------------------------------------------------------------
class _ScriptModuleStub:
    """Stands in for a `__torch__.*` class of the archive; keeps only its attribute dict."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"__state__": state}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


# Archives written by torch.jit.save wrap typed lists in these helpers (torch.jit._pickle): each
# only hands back the list it is given (restore_type_tag also drops a type string). They are
# replaced by an identity function of ours, so the list is read as data and no torch.jit code runs.
_JIT_LIST_HELPERS = ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                     "restore_type_tag")


def _returns_first_argument(value, *unused):
    return value


class _RefusedGlobal(pickle.UnpicklingError):
    """A global of the archive other than tensors and containers (code would have to run)."""

    def __init__(self, name: str):
        super().__init__(f"refusing to load global {name}")
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and module attribute dicts; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._source = archive, prefix, source
        self._storages: Dict[str, torch.UntypedStorage] = {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptModuleStub
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(torch._utils, name)
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch.jit._pickle" and name in _JIT_LIST_HELPERS:
            return _returns_first_argument
        raise _RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._source}: unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None:
            raise pickle.UnpicklingError(f"{self._source}: unknown storage type {storage_type!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            self._storages[key] = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) \
                if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=self._storages[key], dtype=dtype,
                                          _internal=True)


class BackboneError(ValueError):
    """A CLIP weight file that cannot be read, or whose tensors do not fit the model."""


def _flatten(obj, prefix: str, out: Dict[str, torch.Tensor]) -> None:
    state = obj.state if isinstance(obj, _ScriptModuleStub) else obj
    if not isinstance(state, Mapping):
        return
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, (_ScriptModuleStub, Mapping)):
            _flatten(value, f"{prefix}{key}.", out)


def read_torchscript_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """All tensors of a TorchScript archive's module tree, by dotted name (no code is run)."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise BackboneError(f"{path}: zip file without <archive>/data.pkl; not a TorchScript "
                             f"archive or torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        root = _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, path).load()
    tensors: Dict[str, torch.Tensor] = {}
    _flatten(root, "", tensors)
    if not tensors:
        raise BackboneError(f"{path}: the TorchScript archive holds no tensors")
    return tensors


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/code/") or "/code/__torch__" in n for n in archive.namelist())


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """A state dict from a CLIP/Vita-CLIP file; never executes code from the file. A file that
    cannot be read, or only by running code, raises the project's CheckpointError
    (``common.safe_load``: one wording for every reader)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path} (MODEL.VITA.BACKBONE_PATH)")
    try:
        if _is_torchscript(path):
            return read_torchscript_state_dict(path)
    except BackboneError:
        raise
    except _RefusedGlobal as err:  # the TorchScript reader's own refusal
        raise unsafe_error(path, [err.name]) from err
    except Exception as err:  # noqa: BLE001 - a damaged archive
        raise load_error(path, err) from err
    return unwrap_state_dict(safe_torch_load(path), path)


def unwrap_state_dict(data, source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The tensors under `state_dict`/`model` wrappers, without DDP/compile key prefixes."""
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
    if not isinstance(data, Mapping):
        raise BackboneError(f"{source}: expected a state dict, got {type(data).__name__}")
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    return clean_state_dict(tensors)


# ------------------------------------------------------------------------------------------
# Key mapping
# ------------------------------------------------------------------------------------------
_VISUAL_BLOCK = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.(.+)$")
_BLOCK_RENAMES = {"ln_1": "norm1", "ln_2": "norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
                  "attn.out_proj": "attn.out_proj"}
_TEXT_KEYS = re.compile(r"^(token_embedding\.|positional_embedding$|transformer\.|ln_final\.|"
                        r"text_projection$)")


def openai_to_vita(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """OpenAI CLIP names -> Vita-CLIP names (q/k/v split, zero patch bias, `textual.` prefix).

    Tensors with no destination (hyper-parameter scalars, attention masks) are dropped; any
    other unknown key is kept under its own name so strict loading reports it.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if _IGNORED_OPENAI.match(key):
            continue
        block = _VISUAL_BLOCK.match(key)
        if block:
            index, rest = block.groups()
            base = f"visual.blocks.{index}."
            if rest.startswith("attn.in_proj_"):
                kind = rest[len("attn.in_proj_"):]
                for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                    out[f"{base}attn.{name}_proj.{kind}"] = part.clone()
                continue
            for old, new in _BLOCK_RENAMES.items():
                if rest.startswith(old + "."):
                    out[base + new + rest[len(old):]] = value
                    break
            else:
                out[key] = value
            continue
        if key == "visual.conv1.weight":
            out["visual.patch_embed.proj.weight"] = value
            # OpenAI's stem has no bias; the reference's Conv2d has one, loaded as zeros
            out["visual.patch_embed.proj.bias"] = torch.zeros(value.shape[0], dtype=value.dtype)
        elif key == "visual.class_embedding":
            out["visual.cls_token"] = value
        elif key == "visual.positional_embedding":
            out["visual.pos_embed"] = value
        elif _TEXT_KEYS.match(key):
            out["textual." + key] = value
        else:
            out[key] = value
    return out


def to_vita_names(state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    """Detect the key format of a CLIP file and return Vita-CLIP names."""
    keys = set(state_dict)
    if "visual.conv1.weight" in keys:
        return openai_to_vita(state_dict)
    if "visual.patch_embed.proj.weight" in keys:
        return {k: v for k, v in state_dict.items() if not _IGNORED_OPENAI.match(k)}
    sample = ", ".join(sorted(keys)[:5])
    raise BackboneError(f"{source}: not a CLIP checkpoint: expected `visual.conv1.weight` "
                        f"(OpenAI) or `visual.patch_embed.proj.weight` (Vita-CLIP backbone); "
                        f"found {sample}")


# ------------------------------------------------------------------------------------------
# Strict loading of the CLIP subset
# ------------------------------------------------------------------------------------------
_CLIP_VISUAL = re.compile(
    r"^visual\.(patch_embed\.proj\.(weight|bias)|cls_token|pos_embed|ln_pre\.\w+|ln_post\.\w+|proj"
    r"|blocks\.\d+\.(attn\.(q|k|v|out)_proj\.\w+|norm[12]\.\w+|mlp\.fc[12]\.\w+))$")


def clip_param_names(model: nn.Module) -> List[str]:
    """Names of the model's parameters that come from a CLIP checkpoint."""
    names = []
    for name, _ in model.named_parameters():
        if name == "logit_scale" or name.startswith("textual.") or _CLIP_VISUAL.match(name):
            names.append(name)
    return names


@dataclass
class BackboneReport:
    source: str
    loaded: List[str] = field(default_factory=list)
    skipped_text: List[str] = field(default_factory=list)
    cast_from: str = ""

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} CLIP tensors from {self.source}"
        if self.cast_from:
            text += f" (cast from {self.cast_from})"
        if self.skipped_text:
            text += f"; {len(self.skipped_text)} text-tower tensors skipped (no text tower built)"
        return text


def load_clip_weights(model: nn.Module, source: Union[str, Mapping[str, torch.Tensor]]
                      ) -> BackboneReport:
    """Copy CLIP weights (file path or state dict, any accepted format) into `model` strictly.

    Raises ValueError listing missing / unexpected keys and shape mismatches. Half-precision
    files are cast to the parameters' dtype (float32 for a float32 model).
    """
    name = source if isinstance(source, str) else "state dict"
    raw = read_checkpoint(source) if isinstance(source, str) else unwrap_state_dict(source, name)
    mapped = to_vita_names(raw, name)
    params = dict(model.named_parameters())
    wanted = clip_param_names(model)
    has_text = any(n.startswith("textual.") for n in params)
    report = BackboneReport(source=name)
    problems = []
    missing = [k for k in wanted if k not in mapped]
    if missing:
        problems.append(f"missing {len(missing)} CLIP tensors: {', '.join(missing[:8])}"
                        + (" ..." if len(missing) > 8 else ""))
    unexpected = []
    for key in mapped:
        if key in wanted:
            continue
        if key.startswith("textual.") and not has_text:
            report.skipped_text.append(key)
        else:
            unexpected.append(key)
    if unexpected:
        problems.append(f"{len(unexpected)} tensors have no place in the model: "
                        f"{', '.join(unexpected[:8])}" + (" ..." if len(unexpected) > 8 else ""))
    for key in wanted:
        if key in mapped and tuple(mapped[key].shape) != tuple(params[key].shape):
            problems.append(f"{key}: file has shape {tuple(mapped[key].shape)}, model "
                            f"{tuple(params[key].shape)} (check MODEL.VITA.* widths, "
                            f"DATA.IMG_SIZE and the patch size against the checkpoint)")
    if problems:
        raise BackboneError(f"cannot load CLIP weights from {name}: " + "; ".join(problems))
    dtypes = {str(mapped[k].dtype).replace("torch.", "") for k in wanted}
    with torch.no_grad():
        for key in wanted:
            param = params[key]
            if param.dtype != mapped[key].dtype:
                report.cast_from = ",".join(sorted(dtypes))
            param.copy_(mapped[key].to(device=param.device, dtype=param.dtype))
            report.loaded.append(key)
    return report


def checkpoint_filter_fn(state_dict, model: nn.Module = None) -> Dict[str, torch.Tensor]:
    """A released / trained Vita-CLIP checkpoint -> this model's state dict (names are the
    official ones; only wrappers and DDP's `module.` are removed)."""
    return unwrap_state_dict(state_dict)
