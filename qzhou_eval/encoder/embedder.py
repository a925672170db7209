"""The encoder: prepared texts -> left-padded batches -> model -> pooled, projected, normalised vectors."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from qzhou_eval.constants import INSTRUCTION_TEMPLATE
from qzhou_eval.encoder.cache import EmbeddingCache, model_key
from qzhou_eval.encoder.inputs import InputFormatter, validate_texts
from qzhou_eval.encoder.pass_base import CallContext, EmbeddingBackend
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import QUERY, TaskInstruction
from qzhou_eval.modeling.loading import LoadedModel
from qzhou_eval.modeling.source import ModelSource
from qzhou_eval.options import Batching
from qzhou_eval.resolution.spec import RunSpec

if TYPE_CHECKING:
    from qzhou_eval.encoder.data_parallel import DataParallel
    from qzhou_eval.modeling.token_prepend import TokenPrepending


def _first_rows(inputs: list[str]) -> dict[str, int]:
    """Each distinct input and the first row it appears in (dict order: first appearance)."""
    first_row: dict[str, int] = {}
    for row, text in enumerate(inputs):
        first_row.setdefault(text, row)
    return first_row


logger = logging.getLogger(__name__)


class Encoder:
    """Encodes texts under the QZhou protocol. Build it with :func:`qzhou_eval.load_encoder`."""

    def __init__(
        self,
        loaded: LoadedModel,
        spec: RunSpec,
        source: ModelSource,
        backend: EmbeddingBackend,
        placement: str = "cpu",
    ) -> None:
        self.loaded = loaded  # the tokenizer and widths; the model itself only where it runs in this process
        self.spec = spec
        self.options = spec  # the typed option views (pooling, max_length, dim, ...) the encode path reads
        self.resolution = spec.options  # each option's value and source (explicit/preset/checkpoint/default)
        self.source = source
        self.backend = backend  # what computes the vectors (hf_pass, vllm_backend or endpoint_backend)
        self.placement = placement  # where the vectors are computed: a torch device, vLLM's, or "endpoint"
        self._formatter = InputFormatter(spec.prompt_template, spec.lowercase)
        self.batching = spec.batching
        self.data_parallel: DataParallel | None = None  # set by the runner under torchrun
        self.cache: EmbeddingCache | None = None
        self.stats = EncodeStats()  # where every vector came from (model, in-call repeat, cache)

    def identity(self) -> dict:
        """Model identity + embedding options: what a cached embedding depends on (the spec's one identity)."""
        return self.spec.cache_identity()

    def attach_cache(self, path) -> EmbeddingCache:
        """Serve repeated inputs from (and store new ones in) an on-disk cache at ``path``."""
        self.cache = EmbeddingCache(path, model_key(self.identity()))
        return self.cache

    @property
    def device(self) -> torch.device:
        """Where the model runs in this process (the CPU when an engine or a server runs it)."""
        return getattr(self.backend, "device", torch.device("cpu"))

    @property
    def model(self) -> torch.nn.Module | None:
        return self.loaded.model

    @property
    def formatter(self) -> InputFormatter:
        """Prefix + 'Null' + template formatting (training formats its texts with the same object)."""
        return self._formatter

    @property
    def token_prepending(self) -> TokenPrepending | None:
        """The Token Prepending hooks in use, if any (training runs the same forward)."""
        return getattr(self.backend, "token_prepending", None)

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def embedding_dim(self) -> int:
        """Width of the returned vectors (after Dense heads and MRL truncation)."""
        return self.options.dim or self.loaded.width

    def format_inputs(self, texts: Sequence[str], prefix: str = "") -> list[str]:
        """The exact strings the tokenizer will see (prefix, 'Null' substitution, template)."""
        return self._formatter(texts, prefix)

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        prefix: str | None = None,
        batch_size: int | None = None,
        show_progress: bool | None = None,
        progress_desc: str = "Encoding",
    ) -> np.ndarray:
        """Embed ``texts``; one float32 row per input, in input order.

        Args:
            texts: strings; an empty string becomes ``"Null"`` as in the reference encoder.
            instruction: task instruction, applied as ``"Instruct: {instruction}\\nQuery: "``.
            prefix: a ready-made prefix (what the mteb adapter passes); exclusive with ``instruction``.
            batch_size: overrides the encoder's row cap per batch; results do not depend on it.
            show_progress: a progress bar; ``None`` shows one when logging is at INFO or lower.
            progress_desc: the progress bar's label (the runner names the task and side).

        Returns:
            ``np.ndarray`` of shape ``(len(texts), embedding_dim)``, dtype float32.

        Raises:
            TypeError: a text that is not a string (its index is named).
            EmbeddingError: the model produced NaN or inf.

        Example:
            >>> enc.encode(["hello", "world"], instruction="Retrieve semantically similar text").shape  # doctest: +SKIP
            (2, 384)
        """
        started = time.perf_counter()
        try:
            return self._encode(texts, instruction, prefix, batch_size, show_progress, progress_desc)
        finally:
            self.stats.encode_s += time.perf_counter() - started

    def _encode(self, texts, instruction, prefix, batch_size, show_progress, progress_desc) -> np.ndarray:
        if instruction is not None and prefix is not None:
            raise InvalidOptionError("pass either instruction= or prefix=, not both")
        if instruction:
            prefix = TaskInstruction(instruction).prefix(INSTRUCTION_TEMPLATE, QUERY)  # evaluation's one rule
        inputs = self.format_inputs(texts, prefix or "")  # 1. the exact strings the model sees
        if not inputs:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        batching = self._batching_for(batch_size)
        progress = self._progress_label(len(inputs), batching, show_progress, progress_desc)
        if batching.reference:  # the reference's own batches: every row, no dedupe, no cache
            return self._encode_as_reference(validate_texts(texts), inputs, batching, progress)
        first_row = _first_rows(inputs)  # 2. each distinct input once
        todo = list(first_row)
        self.stats.inputs += len(inputs)
        self.stats.duplicates += len(inputs) - len(todo)
        self.backend.check_first(todo)  # 3. a served model is checked against the local weights first
        vectors = self._cached(todo)  # 4. what the cache already holds
        pending = [t for t in todo if t not in vectors]
        self.stats.encoded += len(pending)
        if pending:  # 5. the rest through the backend (shared over ranks under torchrun), cached as they finish
            vectors.update(zip(pending, self._compute(pending, first_row, batching, progress)))
        return np.stack([vectors[text] for text in inputs]).astype(np.float32, copy=False)  # 6. back to every row

    def _batching_for(self, batch_size: int | None) -> Batching:
        """The encoder's batching, with a per-call row cap (the reference policy keeps its own rows)."""
        if batch_size is None or self.batching.reference:
            return self.batching
        if batch_size <= 0:
            raise InvalidOptionError(f"batch_size must be positive, got {batch_size}")
        return replace(self.batching, max_rows=batch_size)

    @staticmethod
    def _progress_label(rows: int, batching: Batching, show: bool | None, desc: str) -> str | None:
        """The progress bar's label, or None for no bar (by default: more than one batch, logging at INFO)."""
        if show is None:
            show = rows > batching.max_rows and logging.getLogger("qzhou_eval").isEnabledFor(logging.INFO)
        return desc if show else None

    def _call(self, first_row: dict[str, int], progress: str | None) -> CallContext:
        """What the backend's pass over one call needs; under torchrun the writer rank caches the gathered
        vectors in :meth:`_compute` instead of each pass."""
        return CallContext(
            self.tokenizer,
            self.spec.max_length,
            self.embedding_dim,
            self.stats,
            first_row,
            progress,
            self._store_in_cache if self.cache is not None and self.data_parallel is None else None,
        )

    def _compute(self, pending: list[str], first_row: dict[str, int], batching: Batching, progress: str | None):
        """Vectors of ``pending`` from the backend; under torchrun the ranks share the work."""
        call = self._call(first_row, progress)
        if self.data_parallel is None:
            return self.backend.embed(pending, call, batching)
        computed = self.data_parallel.embed(pending, _RankPass(self.backend, call, batching))
        if self.data_parallel.is_writer and self.cache is not None:
            self._store_in_cache(pending, computed)
        return computed

    def _store_in_cache(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """The one place vectors enter the embedding cache."""
        self.cache.put_many(self.cache.keys(texts), vectors)

    def embed_formatted(self, inputs: list[str]) -> np.ndarray:
        """Vectors of already formatted, distinct inputs straight from the backend: no cache, no statistics kept
        (what a served model is checked against)."""
        call = replace(self._call({t: i for i, t in enumerate(inputs)}, None), stats=EncodeStats(), store=None)
        return self.backend.embed(list(inputs), call, self.batching)

    def _encode_as_reference(self, raw: list[str], inputs: list[str], batching: Batching, progress: str | None):
        """Every row through the reference's own batches (encoder/reference_batches.py): no dedupe, no cache.
        Resolution admits the reference policy only where one process runs the model (resolution/backends.py)."""
        self.stats.inputs += len(inputs)
        self.stats.encoded += len(inputs)
        return self.backend.embed_reference(raw, inputs, self._call({}, progress), batching)

    @property
    def _writes_cache(self) -> bool:
        return self.cache is not None and (self.data_parallel is None or self.data_parallel.is_writer)

    def _cached(self, todo: list[str]) -> dict[str, np.ndarray]:
        """The vectors the cache holds for ``todo`` (under data parallelism, the writer's view, shared)."""
        found: dict[str, np.ndarray] = {}
        before = self.stats.copy()
        if self._writes_cache:
            keys = self.cache.keys(todo)
            hits = self.cache.get_many(keys, self.stats)
            found = {t: hits[k] for t, k in zip(todo, keys) if k in hits}
        if self.data_parallel:
            counts = self.stats.minus(before)
            found = self.data_parallel.share_cached(
                todo,
                found,
                self.embedding_dim,
                self.stats,
                (counts.reused_this_run, counts.reused_earlier, counts.repaired),
            )
        return found

    @property
    def n_parameters(self) -> int | None:
        """Parameters of the model this process holds (None when vLLM or a server holds it)."""
        return self.backend.parameters


class _RankPass:
    """One rank's share of a call through the backend (encoder/data_parallel.py deals the shares by length)."""

    def __init__(self, backend: EmbeddingBackend, call: CallContext, batching: Batching) -> None:
        self.backend, self.call, self.batching = backend, call, batching

    def token_lengths(self, texts: list[str]) -> list[int]:
        return self.backend.token_lengths(texts, self.call)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.backend.embed(texts, self.call, self.batching)
