"""What every backend's pass over one call shares: the call's context, the backend protocol, the NaN/inf check
and the protocol's head.

A backend (hf_pass.HfBackend, vllm_backend.VllmBackend, endpoint_backend.EndpointBackend) gets a
:class:`CallContext`, never the encoder: the encoder imports the backends and no backend imports it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from qzhou_eval.encoder.batching import token_lengths
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import EmbeddingError
from qzhou_eval.modeling.loading import LoadedModel
from qzhou_eval.modeling.mrl import truncate_and_normalize
from qzhou_eval.options import Batching
from qzhou_eval.resolution.backends import Capabilities

logger = logging.getLogger(__name__)


@dataclass
class CallContext:
    """What a backend's pass over one encode call's distinct texts needs, and nothing else.

    ``first_row`` maps each distinct input to its first row in the call (errors name inputs by row);
    ``store`` caches finished vectors at once (None: no cache, or torchrun, where the writer rank stores all).
    """

    tokenizer: Any
    max_length: int
    width: int  # the returned vectors' width (after Dense heads and MRL truncation)
    stats: EncodeStats
    first_row: dict[str, int] = field(default_factory=dict)
    progress: str | None = None
    store: Callable[[Sequence[str], np.ndarray], None] | None = None

    def token_lengths(self, texts: list[str]) -> list[int]:
        return token_lengths(self.tokenizer, texts, self.max_length)

    def keep(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Cache finished vectors at once (a run killed now redoes only what was in flight)."""
        if self.store is not None:
            self.store(texts, vectors)

    def warn_truncated(self, truncated: int, total: int) -> None:
        warn_truncated(truncated, total, self.max_length, "distinct text(s)")


class EmbeddingBackend(Protocol):
    """What computes the vectors: transformers in this process, vLLM's engine, or a server. One per encoder."""

    capabilities: Capabilities

    def embed(self, texts: list[str], call: CallContext, batching: Batching) -> np.ndarray:
        """Float32 vectors of distinct ``texts`` (formatted), in order, through the protocol's head."""

    def token_lengths(self, texts: list[str], call: CallContext) -> list[int]:
        """Each text's token count (data parallelism deals texts to ranks by it)."""

    def check_first(self, inputs: list[str]) -> None:
        """A check before the first texts are computed (a served model against the local weights)."""

    def describe(self) -> dict[str, Any] | None:
        """What a run's manifest says of this backend beyond the options (a server's requests), or None."""

    @property
    def parameters(self) -> int | None:
        """Parameters this process holds (None when an engine or a server holds the model)."""


@dataclass(frozen=True)
class BuiltBackend:
    """What a backend module's ``build(spec)`` returns: the tokenizer and widths, the backend, where it computes."""

    loaded: LoadedModel
    backend: EmbeddingBackend
    placement: str  # a torch device, vLLM's device type, or "endpoint"


class BackendDefaults:
    """What most backends answer: token lengths by the local tokenizer, no check first, nothing more for the
    manifest, no parameters held here. A backend overrides what it does differently."""

    def token_lengths(self, texts: list[str], call: CallContext) -> list[int]:
        return call.token_lengths(texts)

    def check_first(self, inputs: list[str]) -> None:
        return None

    def describe(self) -> dict[str, Any] | None:
        return None

    @property
    def parameters(self) -> int | None:
        return None


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
