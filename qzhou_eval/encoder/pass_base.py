"""What every backend's pass over one call shares: the pass's state, the NaN/inf check and the protocol's head.

The backends (hf_pass, vllm_backend, endpoint_backend, reference_batches) import from here and the encoder
imports the backends, so the encode path has no import cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from qzhou_eval.encoder.batching import token_lengths
from qzhou_eval.errors import EmbeddingError
from qzhou_eval.modeling.mrl import truncate_and_normalize

if TYPE_CHECKING:
    from qzhou_eval.encoder.embedder import Encoder

logger = logging.getLogger(__name__)


class PassBase:
    """What every backend's pass over one call's distinct texts holds; data parallelism asks it for token lengths."""

    def __init__(self, encoder: Encoder, first_row: dict[str, int], progress: str | None) -> None:
        self.encoder = encoder
        self.first_row = first_row
        self.progress = progress
        self._cache_writer = encoder.cache_writer()  # None under data parallelism: the writer rank stores all

    def token_lengths(self, texts: list[str]) -> list[int]:
        return token_lengths(self.encoder.tokenizer, texts, self.encoder.options.max_length)

    def keep(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Cache finished vectors at once (a run killed now redoes only what was in flight)."""
        if self._cache_writer is not None:
            self._cache_writer(texts, vectors)

    def warn_truncated(self, truncated: int, total: int) -> None:
        warn_truncated(truncated, total, self.encoder.options.max_length, "distinct text(s)")


def warn_truncated(truncated: int, total: int, max_length: int, what: str = "text(s)") -> None:
    """One warning per call that cut texts to ``max_length`` (a sign the truncation length is too short)."""
    if truncated:
        logger.warning(
            "%d of %d %s are longer than max_length=%d tokens and were truncated", truncated, total, what, max_length
        )


def check_finite(vectors: np.ndarray, input_index: Callable[[int], int]) -> None:
    """Never return NaN/inf as an embedding; name the inputs (``input_index(i)``: row ``i``'s input position).

    Raises:
        EmbeddingError: naming up to 10 inputs and the usual fix.
    """
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = sorted(input_index(int(i)) for i in np.flatnonzero(~finite))
        raise EmbeddingError(
            f"the model produced NaN/inf embeddings for input(s) {bad[:10]}; try "
            "dtype='float32' or check the checkpoint's weights"
        )


def normalised_in_float32(projected: bool, dim: int | None) -> bool:
    """Whether vectors are normalised after the cast to float32 (Dense head or MRL slice: the Zh way) rather than
    in the model's dtype (QZhou-Embedding's way)."""
    return projected or dim is not None


def finish(embeddings: torch.Tensor, projected: bool, dim: int | None, normalize: bool) -> torch.Tensor:
    """Float32 vectors from pooled (model dtype) or projected states, in the protocol's order.

    Unprojected and untruncated (QZhou-Embedding): normalised in the model's dtype, then cast to float32.
    Otherwise (QZhou-Embedding-Zh: Dense head, MRL): cast to float32, keep the first ``dim`` values, normalise.
    """
    if not normalised_in_float32(projected, dim):
        return truncate_and_normalize(embeddings, None, normalize).float()
    return truncate_and_normalize(embeddings.float(), dim, normalize)


def project(pooled: torch.Tensor, dense: Sequence[torch.nn.Module]) -> torch.Tensor:
    """Run the Dense heads on the pooled states in their own (the model's) dtype; float32 out."""
    embeddings = pooled
    for head in dense:
        embeddings = head({"sentence_embedding": embeddings})["sentence_embedding"]
    return embeddings.float()
