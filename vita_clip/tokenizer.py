"""CLIP tokenisation for Vita-CLIP prompts.

The ids are those of OpenAI CLIP's byte-level BPE (open_clip ships the same vocabulary file):
``[SOT, tokens..., EOT]`` padded with id 0 to the context length. Unlike open_clip's callable,
an over-long prompt raises instead of being cut silently, and the result is int64 so it can be
used directly as an index.
"""
from __future__ import annotations

import functools
from typing import List, Sequence

import torch

__all__ = ["get_tokenizer", "encode", "tokenize", "text_length", "prompt_prefix_words",
           "clean_class_name"]


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
