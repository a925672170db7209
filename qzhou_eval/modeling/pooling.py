"""Pooling of token states into one vector per text: pure tensor functions."""

from __future__ import annotations

import torch

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.pooling_mode import Pooling

__all__ = ["Pooling", "pool", "mean_pool", "last_token_index", "first_token_index"]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token; right for left and right padding alike."""
    seq_len = attention_mask.shape[1]
    positions = torch.arange(seq_len, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, -1).max(dim=1).values


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's first real token (0 under right padding, the pad count under left)."""
    return attention_mask.long().argmax(dim=1)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens, with the QZhou reference encoder's own operations and dtypes.

    The reference (embedder.py, ``get_pooling``) sums each row's last ``n`` states in the model dtype
    and divides by ``n`` as a 0-dim integer tensor, which torch treats as an exact scalar: in bf16,
    417 tokens divide by 417, whereas a ``[batch, 1]`` count tensor would first be rounded to bf16
    (416). Doing the same operations gives the same bits on the same device. Rows that are not
    left-padded (their real tokens are not the last ``n``) select their real tokens by the mask;
    pad states never enter, even when they hold NaN.
    """
    counts = attention_mask.sum(dim=-1)
    real = attention_mask.bool()
    # One host sync for the whole batch: which rows have all their real tokens at the end.
    tail_is_real = ((real.flip(-1).long().cumprod(dim=-1).sum(dim=-1) == counts) & (counts > 0)).tolist()
    rows = []
    for i, n in enumerate(counts):
        # n stays a 0-dim tensor on the device, as in the reference: a Python int would be an exact
        # scalar on CUDA too, where the reference's device tensor is cast to the hidden dtype first.
        states = hidden[i, -n:] if tail_is_real[i] else hidden[i][real[i]]
        rows.append(states.sum(dim=0) / n.clamp(min=1))
    return torch.stack(rows, dim=0)


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
