"""``--batching reference``: the reference embedders' own batches, so bf16 results equal the published runs bit for bit.

In bf16 a row's vector depends on the padded length of the batch it ran in, so only the same batches give
the same bits. The reference embedders form them from every row of a call (duplicates included, no cache),
in the order ``np.argsort`` gives the negative character lengths of the raw texts, 32 rows a batch. The
published runs first split each call across their GPUs (contiguous shards, one per GPU: ``gpus``), and the
Zh reference hands sentence-transformers blocks of 128 sorted rows (``block``), which it sorts again by the
formatted text's length before cutting its own 32-row batches. The Zh reference normalises the float32
vectors of the whole call with scikit-learn's ``normalize`` after slicing to ``dim``; QZhou-Embedding
normalises each batch in the model's dtype (as the budget policy does too).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from qzhou_eval.encoder.batching import collate, tokenize
from qzhou_eval.encoder.pass_base import CallContext, check_finite, warn_truncated
from qzhou_eval.options import Batching

logger = logging.getLogger(__name__)


class ReferenceModel(Protocol):
    """What the reference pass runs (the hf backend): one collated batch to vectors, and where it normalises."""

    normalises_in_float32: bool
    normalize: bool

    def embed_batch(self, features: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor: ...


def _by_length(rows: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """``rows`` longest text first, ties as ``np.argsort`` (default kind) leaves them, as the references sort."""
    return rows[np.argsort([-len(texts[i]) for i in rows])]


def reference_batches(raw: Sequence[str], formatted: Sequence[str], batching: Batching) -> list[np.ndarray]:
    """The row indices of each forward pass of one call, in the order the reference runs them."""
    batches: list[np.ndarray] = []
    rows = batching.max_rows
    for shard in np.array_split(np.arange(len(raw)), batching.gpus):
        order = _by_length(shard, raw)
        blocks = (
            [order]
            if not batching.block
            else [order[s : s + batching.block] for s in range(0, len(order), batching.block)]
        )
        for block in blocks:
            if batching.block:  # sentence-transformers sorts what it is handed, by the text it tokenises
                block = _by_length(block, formatted)
            batches.extend(block[s : s + rows] for s in range(0, len(block), rows))
    return [b for b in batches if len(b)]


def reference_pass(
    model: ReferenceModel, raw: Sequence[str], formatted: Sequence[str], call: CallContext, batching: Batching
) -> np.ndarray:
    """One call through ``model`` in the reference's batches; every row is computed, none from the cache."""
    out = np.empty((len(formatted), call.width), dtype=np.float32)
    late = model.normalises_in_float32 and model.normalize  # the Zh reference: sklearn, over the whole call
    truncated = 0
    with tqdm(total=len(formatted), desc=call.progress, unit="text", disable=call.progress is None) as bar:
        for rows in reference_batches(raw, formatted, batching):
            tokens = tokenize(call.tokenizer, [formatted[i] for i in rows], call.max_length)
            truncated += tokens.truncated
            features = collate(call.tokenizer, tokens, range(len(rows)))
            vectors = model.embed_batch(features, normalize=not late)
            call.stats.tokens += sum(len(ids) for ids in tokens.input_ids)
            call.stats.padded_tokens += features["attention_mask"].numel()
            batch = vectors.cpu().numpy()
            check_finite(batch, lambda i, rows=rows: int(rows[i]))
            out[rows] = batch
            bar.update(len(rows))
    warn_truncated(truncated, len(formatted), call.max_length)
    if late:
        from sklearn.preprocessing import normalize

        out = normalize(out)
    return out
