"""Matryoshka (MRL) truncation: keep the first ``dim`` values, then L2-normalise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from qzhou_eval.errors import InvalidOptionError


def check_dim(dim: int | None, width: int, declared: Sequence[int] | None) -> int | None:
    """Validate an MRL dimension against the model's width and its declared dims.

    Raises:
        InvalidOptionError: naming the valid dimensions.
    """
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise InvalidOptionError(f"dim must be a positive integer, got {dim!r}")
    if declared:
        valid = sorted(d for d in declared if d <= width)
        if dim not in valid:
            raise InvalidOptionError(f"dim={dim} is not a dimension this checkpoint declares; valid dims are {valid}")
    elif dim > width:
        raise InvalidOptionError(
            f"dim={dim} is larger than the model's output width {width}; valid dims are 1..{width}"
        )
    return dim


def truncate_and_normalize(embeddings: torch.Tensor, dim: int | None, normalize: bool) -> torch.Tensor:
    """The published MRL protocol: slice first, normalise after (never the other way round)."""
    if dim is not None:
        embeddings = embeddings[:, :dim]
    if normalize:
        embeddings = F.normalize(embeddings, p=2, dim=-1)
    return embeddings
