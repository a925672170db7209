"""The encoder: prepared texts -> left-padded batches -> model -> pooled, projected, normalised vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from qzhou_eval.constants import INSTRUCTION_TEMPLATE
from qzhou_eval.encoder.batching import collate, length_sorted_batches, tokenize
from qzhou_eval.encoder.cache import EmbeddingCache, model_key
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.encoder.inputs import InputFormatter
from qzhou_eval.errors import EmbeddingError, InvalidOptionError
from qzhou_eval.instructions.registry import format_instruction
from qzhou_eval.modeling.loading import LoadedModel
from qzhou_eval.modeling.mrl import truncate_and_normalize
from qzhou_eval.modeling.forward import pooled_states
from qzhou_eval.modeling.pooling import Pooling
from qzhou_eval.modeling.source import ModelSource
from qzhou_eval.modeling.token_prepend import TokenPrepending
from qzhou_eval.options import ResolvedOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderOptions:
    """Every option that changes an embedding (plus batch size and device, which must not)."""

    pooling: Pooling
    normalize: bool
    dim: int | None
    max_length: int
    bidirectional: bool | None
    prompt_template: str | None
    token_prepending: bool
    batch_size: int
    dtype: str
    device: str
    token_prepending_layers: tuple[int, ...] | None = None
    lowercase: bool = False

    def embedding_options(self) -> dict:
        """The options an embedding depends on (for cache keys and manifests)."""
        out = asdict(self)
        out["pooling"] = self.pooling.value
        if self.token_prepending_layers is not None:
            out["token_prepending_layers"] = list(self.token_prepending_layers)
        for key in ("batch_size", "device"):
            out.pop(key)
        return out


class Encoder:
    """Encodes texts under the QZhou protocol. Build it with :func:`qzhou_eval.load_encoder`."""

    def __init__(
        self,
        loaded: LoadedModel,
        options: EncoderOptions,
        source: ModelSource,
        token_prepending: TokenPrepending | None = None,
        resolution: ResolvedOptions | None = None,
    ) -> None:
        self.loaded = loaded
        self.options = options
        self.source = source
        self.resolution = resolution  # each option's value and source (explicit/preset/checkpoint/default)
        self._formatter = InputFormatter(options.prompt_template, options.lowercase)
        self._token_prepending = token_prepending
        self._device = next(loaded.model.parameters()).device
        self.cache: EmbeddingCache | None = None
        self.stats = EncodeStats()  # where every vector came from (model, in-call repeat, cache)

    def identity(self) -> dict:
        """Model identity + embedding options: what a cached embedding depends on."""
        return {
            "model": self.source.name_or_path,
            "weights": self.source.fingerprint(),
            "options": self.options.embedding_options(),
        }

    def attach_cache(self, path) -> EmbeddingCache:
        """Serve repeated inputs from (and store new ones in) an on-disk cache at ``path``."""
        self.cache = EmbeddingCache(path, model_key(self.identity()))
        return self.cache

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def formatter(self) -> InputFormatter:
        """Prefix + 'Null' + template formatting (training formats its texts with the same object)."""
        return self._formatter

    @property
    def token_prepending(self) -> TokenPrepending | None:
        """The Token Prepending hooks in use, if any (training runs the same forward)."""
        return self._token_prepending

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
            batch_size: overrides the encoder's batch size; results do not depend on it.
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
        if instruction is not None and prefix is not None:
            raise InvalidOptionError("pass either instruction= or prefix=, not both")
        if instruction:
            prefix = format_instruction(INSTRUCTION_TEMPLATE, instruction)
        inputs = self.format_inputs(texts, prefix or "")
        out = np.empty((len(inputs), self.embedding_dim), dtype=np.float32)
        if not inputs:
            return out
        batch_size = batch_size or self.options.batch_size
        if batch_size <= 0:
            raise InvalidOptionError(f"batch_size must be positive, got {batch_size}")
        # Identical inputs are encoded once; with a cache, known ones are not encoded at all.
        first_row: dict[str, int] = {}
        for row, text in enumerate(inputs):
            first_row.setdefault(text, row)
        todo = list(first_row)
        self.stats.inputs += len(inputs)
        self.stats.duplicates += len(inputs) - len(todo)
        keys = self.cache.keys(todo) if self.cache else []
        if self.cache:
            found = self.cache.get_many(keys, self.stats)
            vectors = {t: found[k] for t, k in zip(todo, keys) if k in found}
            pending = [(t, k) for t, k in zip(todo, keys) if k not in found]
        else:
            vectors, pending = {}, [(t, None) for t in todo]
        self.stats.encoded += len(pending)
        if pending:
            self._encode_pending(pending, vectors, batch_size, show_progress, first_row, progress_desc)
        for row, text in enumerate(inputs):
            out[row] = vectors[text]
        return out

    def _encode_pending(
        self,
        pending,
        vectors: dict,
        batch_size: int,
        show_progress: bool | None,
        first_row: dict[str, int],
        desc: str,
    ) -> None:
        texts = [t for t, _ in pending]
        tokens = tokenize(self.tokenizer, texts, self.options.max_length)
        if tokens.truncated:
            logger.warning(
                "%d of %d distinct text(s) are longer than max_length=%d tokens and were truncated",
                tokens.truncated,
                len(texts),
                self.options.max_length,
            )
        batches = list(length_sorted_batches([len(ids) for ids in tokens.input_ids], batch_size))
        if show_progress is None:
            show_progress = len(batches) > 1 and logging.getLogger("qzhou_eval").isEnabledFor(logging.INFO)
        for rows in tqdm(batches, desc=desc, unit="batch", disable=not show_progress):
            embeddings = self._embed_batch(collate(self.tokenizer, tokens, rows))
            finite = torch.isfinite(embeddings).all(dim=1)
            if not finite.all():
                bad = sorted(first_row[texts[rows[i]]] for i in (~finite).nonzero().flatten().tolist())
                raise EmbeddingError(
                    f"the model produced NaN/inf embeddings for input(s) {bad[:10]}; try dtype='float32' "
                    "or check the checkpoint's weights"
                )
            batch = embeddings.cpu().numpy()
            for i, row in enumerate(rows):
                vectors[texts[row]] = batch[i]
            if self.cache:
                self.cache.put_many([pending[row][1] for row in rows], batch)

    @torch.inference_mode()
    def _embed_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {k: v.to(self._device) for k, v in batch.items()}
        pooled = pooled_states(self.loaded, batch, self.options.pooling, self._token_prepending)
        return self._head(pooled)

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Dense heads, MRL truncation and normalisation, in the order and dtypes the references use.

        QZhou-Embedding normalises the pooled vector in the model's dtype and then casts to float32;
        QZhou-Embedding-Zh runs its Dense head in the model's dtype (sentence-transformers in bf16),
        casts to float32, slices to ``dim``, then normalises.
        """
        if not self.loaded.dense and self.options.dim is None:
            return truncate_and_normalize(pooled, None, self.options.normalize).float()
        return truncate_and_normalize(project(pooled, self.loaded.dense), self.options.dim, self.options.normalize)


def project(pooled: torch.Tensor, dense: Sequence[torch.nn.Module]) -> torch.Tensor:
    """Run the Dense heads on the pooled states in their own (the model's) dtype; float32 out."""
    embeddings = pooled
    for head in dense:
        embeddings = head({"sentence_embedding": embeddings})["sentence_embedding"]
    return embeddings.float()
