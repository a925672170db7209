"""The transformers backend's pass over one call's distinct texts (the budget policy's batches)."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from qzhou_eval.encoder.batching import BatchPlan, prefetched
from qzhou_eval.encoder.pass_base import PassBase, check_finite
from qzhou_eval.options import Batching

if TYPE_CHECKING:
    from qzhou_eval.encoder.embedder import Encoder

logger = logging.getLogger(__name__)


class HfPass(PassBase):
    """One call's distinct texts through the model: batches prepared ahead in a thread, results copied
    back, checked and cached in another, so the device never waits on Python."""

    def __init__(self, encoder: Encoder, batching: Batching, first_row: dict[str, int], progress: str | None) -> None:
        super().__init__(encoder, first_row, progress)
        self.batching = batching

    def __call__(self, texts: list[str]) -> np.ndarray:
        encoder = self.encoder
        out = np.empty((len(texts), encoder.embedding_dim), dtype=np.float32)
        if not texts:
            return out
        plan = BatchPlan(encoder.tokenizer, texts, encoder.options.max_length, self.batching)
        pin = encoder.device.type == "cuda"
        bar = tqdm(total=len(texts), desc=self.progress, unit="text", disable=self.progress is None)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qzhou-eval-results") as sink, bar:
            finished: list[Future] = []
            for batch in prefetched(_pinned(plan) if pin else plan):
                embeddings = encoder.embed_batch(batch.features)
                encoder.stats.tokens += batch.tokens
                encoder.stats.padded_tokens += batch.features["attention_mask"].numel()
                finished.append(sink.submit(self._store, texts, batch.rows, embeddings, out))
                bar.update(len(batch.rows))
                while finished and finished[0].done():
                    finished.pop(0).result()  # raises a failed batch's error now, not at the end
            for future in finished:
                future.result()
        self.warn_truncated(plan.truncated, len(texts))
        return out

    def _store(self, texts, rows, embeddings: torch.Tensor, out: np.ndarray) -> None:
        batch = embeddings.cpu().numpy()
        check_finite(batch, lambda i: self.first_row[texts[rows[i]]])
        out[rows] = batch
        self.keep([texts[r] for r in rows], batch)


def _pinned(plan: BatchPlan):
    """Page-locked host tensors, so the copy to the GPU overlaps with its work."""
    for batch in plan:
        batch.features = {k: v.pin_memory() for k, v in batch.features.items()}
        yield batch
