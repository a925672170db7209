"""Tokenise once, sort by token length (longest first), batch, and remember the input order."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass
class TokenizedTexts:
    """Token ids of every text (already truncated), and how many needed truncation."""

    input_ids: list[list[int]]
    extra: dict[str, list[list[int]]]
    truncated: int


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> TokenizedTexts:
    """Tokenise without padding; texts over ``max_length`` tokens are re-tokenised with truncation.

    Only the long texts go through the tokenizer twice, so the truncation count is exact and cheap.
    """
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    keys = [k for k in full.keys() if k not in ("input_ids", "attention_mask")]
    input_ids = list(full["input_ids"])
    extra = {k: list(full[k]) for k in keys}
    long_rows = [i for i, ids in enumerate(input_ids) if len(ids) > max_length]
    if long_rows:
        cut = tokenizer([texts[i] for i in long_rows], add_special_tokens=True, truncation=True, max_length=max_length)
        for j, i in enumerate(long_rows):
            input_ids[i] = cut["input_ids"][j]
            for k in keys:
                extra[k][i] = cut[k][j]
    return TokenizedTexts(input_ids, extra, len(long_rows))


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices in batches, longest first (stable, so equal lengths keep input order)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def collate(tokenizer, tokens: TokenizedTexts, rows: Sequence[int]) -> dict[str, torch.Tensor]:
    """Left-pad the chosen rows into tensors (the tokenizer's padding side is left)."""
    features = [{"input_ids": tokens.input_ids[i], **{k: v[i] for k, v in tokens.extra.items()}} for i in rows]
    return dict(tokenizer.pad(features, padding=True, return_tensors="pt"))
