"""Pooling of token states into one vector per text: pure tensor functions."""

from __future__ import annotations

from enum import Enum

import torch

from qzhou_eval.errors import InvalidOptionError


class Pooling(str, Enum):
    """How token states become one sentence vector."""

    MEAN = "mean"
    LAST = "last"
    CLS = "cls"

    @classmethod
    def from_str(cls, value: str | Pooling) -> Pooling:
        """Parse a pooling name; the reference scripts' spellings are accepted too.

        Raises:
            InvalidOptionError: listing the valid names.

        Example:
            >>> Pooling.from_str("last_token")
            <Pooling.LAST: 'last'>
        """
        if isinstance(value, Pooling):
            return value
        key = str(value).strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise InvalidOptionError.for_choice("Pooling", value, [p.value for p in cls]) from None


# Spellings used by the reference scripts (--pooling_mode) and sentence-transformers configs.
_ALIASES = {
    "avg": "mean",
    "average": "mean",
    "mean_tokens": "mean",
    "last_token": "last",
    "lasttoken": "last",
    "eos_token": "last",
    "eos": "last",
    "cls_token": "cls",
    "first": "cls",
}


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token; right for left and right padding alike."""
    seq_len = attention_mask.shape[1]
    positions = torch.arange(seq_len, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, -1).max(dim=1).values


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's first real token (0 under right padding, the pad count under left)."""
    return attention_mask.long().argmax(dim=1)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens only; pad states never enter (even if they hold NaN).

    The arithmetic stays in the hidden states' dtype, as in the reference encoder
    (``h[i, -n:].sum(0) / n`` in bfloat16 on GPU), so bf16 runs round where the reference rounds.
    """
    mask = attention_mask.bool().unsqueeze(-1)
    summed = hidden.masked_fill(~mask, 0.0).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1)
    return summed / counts


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """Pool ``hidden`` [batch, seq, width] into [batch, width], in the hidden states' dtype.

    Example:
        >>> pool(torch.ones(1, 3, 2), torch.tensor([[0, 1, 1]]), Pooling.MEAN).shape
        torch.Size([1, 2])
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode is Pooling.MEAN:
        return mean_pool(hidden, attention_mask)
    if mode is Pooling.LAST:
        return hidden[rows, last_token_index(attention_mask)]
    if mode is Pooling.CLS:
        return hidden[rows, first_token_index(attention_mask)]
    raise InvalidOptionError.for_choice("Pooling", mode, [p.value for p in Pooling])
