"""CLIP tokenisation for Vita-CLIP prompts and class-name file reading.

The ids are those of OpenAI CLIP's byte-level BPE (open_clip ships the same vocabulary file):
``[SOT, tokens..., EOT]`` padded with id 0 to the context length. Unlike open_clip's callable,
an over-long prompt raises instead of being cut silently, and the result is int64 so it can be
used directly as an index.
"""
from __future__ import annotations

import csv
import functools
import os
from typing import Iterable, List, Sequence

import torch

__all__ = ["get_tokenizer", "encode", "tokenize", "text_length", "read_class_names",
           "prompt_prefix_words", "clean_class_name"]


@functools.lru_cache(maxsize=1)
def get_tokenizer():
    """One shared open_clip SimpleTokenizer (reading the BPE file once per process)."""
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


def encode(text: str) -> List[int]:
    """BPE ids of `text` without SOT/EOT (ftfy + html unescape + whitespace clean + lower case)."""
    return get_tokenizer().encode(text)


def tokenize(texts: Sequence[str] | str, context_length: int = 77) -> torch.Tensor:
    """Token ids [N, context_length] int64: SOT, BPE ids, EOT, zero padding."""
    if isinstance(texts, str):
        texts = [texts]
    tok = get_tokenizer()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [tok.sot_token_id] + tok.encode(text) + [tok.eot_token_id]
        if len(ids) > context_length:
            raise ValueError(f"prompt {text!r} is {len(ids)} tokens long, more than the text "
                             f"context length {context_length}; shorten the class name or the "
                             f"prompt (MODEL.VITA.TEXT_NUM_PROMPTS / TEXT_PROMPT_INIT)")
        result[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return result


def text_length(tokens: torch.Tensor) -> int:
    """Positions the text tower must run for token ids [N, L]: up to the last EOT (the largest
    id, CLIP's convention), inclusive. A meta tensor (no values) gives the full length L."""
    if tokens.is_meta:
        return tokens.shape[-1]
    return int(tokens.argmax(dim=-1).max()) + 1


def clean_class_name(name: str) -> str:
    """The reference's only class-name rewrite: underscores become spaces."""
    return name.replace("_", " ")


def prompt_prefix_words(num_prompts: int, init: str) -> str:
    """The context part of the learned-prompt template ("X X ... X" or the init phrase)."""
    if init:
        return init.replace("_", " ")
    return " ".join(["X"] * num_prompts)


def read_class_names(path: str) -> List[str]:
    """Class names from a file: one name per line, or CSV ``id,name`` with a header line.

    CSV rows are put in id order and the ids must be 0..C-1 without gaps.
    """
    if not path:
        raise ValueError("no class-name file given: set DATA.LABEL_LIST to a file with one class "
                         "name per line (or the CSV form `id,name` with a header)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class-name file not found: {path} (DATA.LABEL_LIST)")
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: the class-name file is empty")
    if lines[0].strip().lower().replace(" ", "") == "id,name":
        return _read_csv_names(path, lines[1:])
    names = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise ValueError(f"{path} line {number}: empty class name; remove the blank line")
        names.append(name)
    _check_unique(names, path)
    return names


def _read_csv_names(path: str, rows: Iterable[str]) -> List[str]:
    by_id = {}
    for number, row in enumerate(csv.reader(rows), start=2):
        if not row:
            continue
        if len(row) < 2:
            raise ValueError(f"{path} line {number}: expected `id,name`, got {','.join(row)!r}")
        try:
            idx = int(row[0])
        except ValueError:
            raise ValueError(f"{path} line {number}: class id {row[0]!r} is not an "
                             f"integer") from None
        if idx in by_id:
            raise ValueError(f"{path} line {number}: class id {idx} appears twice")
        by_id[idx] = ",".join(row[1:]).strip()
    if sorted(by_id) != list(range(len(by_id))):
        missing = sorted(set(range(max(by_id) + 1)) - set(by_id))[:5]
        raise ValueError(f"{path}: class ids must be 0..{len(by_id) - 1} without gaps; "
                         f"missing e.g. {missing}")
    names = [by_id[i] for i in range(len(by_id))]
    _check_unique(names, path)
    return names


def _check_unique(names: List[str], path: str) -> None:
    seen = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{path}: class name {name!r} appears twice (entries {seen[name]} "
                             f"and {i}); class names must be unique")
        seen[name] = i
