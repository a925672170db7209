"""The transformers backend: the model runs in this process, in the budget policy's batches or the reference's."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from tqdm.auto import tqdm

from qzhou_eval.constants import TOKEN_PREPENDING_PLACEHOLDER
from qzhou_eval.encoder.batching import BatchPlan, prefetched
from qzhou_eval.encoder.pass_base import (
    BackendDefaults,
    BuiltBackend,
    CallContext,
    check_finite,
    finish,
    normalised_in_float32,
    project,
)
from qzhou_eval.encoder.reference_batches import reference_pass
from qzhou_eval.modeling.bidirectional import enable_bidirectional_attention
from qzhou_eval.modeling.forward import pooled_states
from qzhou_eval.modeling.loading import LoadedModel, load_backbone, resolve_device
from qzhou_eval.modeling.mrl import check_dim
from qzhou_eval.modeling.pooling import Pooling
from qzhou_eval.modeling.token_prepend import TokenPrepending, placeholder_token_id
from qzhou_eval.options import Batching
from qzhou_eval.resolution.backends import Capabilities
from qzhou_eval.resolution.spec import RunSpec

logger = logging.getLogger(__name__)


def build(spec: RunSpec) -> BuiltBackend:
    """transformers in this process: the backbone, its Dense heads, bidirectional attention and Token Prepending."""
    info = spec.info
    torch_device = resolve_device(spec.device)
    loaded = load_backbone(
        info.source,
        info.layout,
        dtype=getattr(torch, spec.dtype),
        device=torch_device,
        trust_remote_code=spec.trust_remote_code,
    )
    check_dim(spec.dim, loaded.width, spec["mrl_dims"])
    if spec.bidirectional:
        enable_bidirectional_attention(loaded.model)
    hooks = None
    if spec.token_prepending:
        hooks = TokenPrepending(
            loaded.model,
            placeholder_token_id(loaded.tokenizer, TOKEN_PREPENDING_PLACEHOLDER),
            spec.token_prepending_layers,
        )
    logger.info(
        "loaded %s (%s, %s, attention=%s)",
        info.source.name_or_path,
        spec.dtype,
        torch_device,
        loaded.attn_implementation,
    )
    backend = HfBackend(spec.backend, loaded, spec.pooling, spec.dim, spec.normalize, hooks)
    return BuiltBackend(loaded, backend, str(torch_device))


class HfBackend(BackendDefaults):
    """A loaded transformers model (with its Dense heads and Token Prepending hooks) and the protocol's head."""

    def __init__(
        self,
        capabilities: Capabilities,
        loaded: LoadedModel,
        pooling: Pooling,
        dim: int | None,
        normalize: bool,
        token_prepending: TokenPrepending | None = None,
    ) -> None:
        self.capabilities = capabilities
        self.loaded = loaded
        self.pooling = pooling
        self.dim = dim
        self.normalize = normalize
        self.token_prepending = token_prepending
        self.device = next(loaded.model.parameters()).device

    @property
    def parameters(self) -> int | None:
        return sum(p.numel() for p in self.loaded.model.parameters())

    @property
    def normalises_in_float32(self) -> bool:
        """True when the vectors are normalised after the cast to float32 (Dense head or MRL slice: the Zh way)."""
        return normalised_in_float32(bool(self.loaded.dense), self.dim)

    @torch.inference_mode()
    def embed_batch(self, features: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Pooled, projected, normalised float32 vectors of one collated batch, on the model's device.

        ``normalize=False`` leaves the float32 path's normalisation to the caller (the Zh reference's sklearn).
        """
        batch = {k: v.to(self.device, non_blocking=True) for k, v in features.items()}
        pooled = pooled_states(self.loaded, batch, self.pooling, self.token_prepending)
        return self.head(pooled, normalize)

    def head(self, pooled: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Dense heads, MRL truncation and normalisation, in the order and dtypes the references use.

        QZhou-Embedding normalises the pooled vector in the model's dtype and then casts to float32;
        QZhou-Embedding-Zh runs its Dense head in the model's dtype (sentence-transformers in bf16),
        casts to float32, slices to ``dim``, then normalises.
        """
        projected = project(pooled, self.loaded.dense) if self.loaded.dense else pooled
        return finish(projected, bool(self.loaded.dense), self.dim, self.normalize and normalize)

    def embed(self, texts: list[str], call: CallContext, batching: Batching) -> np.ndarray:
        """One call's distinct texts through the model: batches prepared ahead in a thread, results copied back,
        checked and cached in another, so the device never waits on Python."""
        out = np.empty((len(texts), call.width), dtype=np.float32)
        if not texts:
            return out
        plan = BatchPlan(call.tokenizer, texts, call.max_length, batching)
        bar = tqdm(total=len(texts), desc=call.progress, unit="text", disable=call.progress is None)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qzhou-eval-results") as sink, bar:
            finished: list[Future] = []
            for batch in prefetched(_pinned(plan) if self.device.type == "cuda" else plan):
                embeddings = self.embed_batch(batch.features)
                call.stats.tokens += batch.tokens
                call.stats.padded_tokens += batch.features["attention_mask"].numel()
                finished.append(sink.submit(_store, call, texts, batch.rows, embeddings, out))
                bar.update(len(batch.rows))
                while finished and finished[0].done():
                    finished.pop(0).result()  # raises a failed batch's error now, not at the end
            for future in finished:
                future.result()
        call.warn_truncated(plan.truncated, len(texts))
        return out

    def embed_reference(
        self, raw: Sequence[str], formatted: Sequence[str], call: CallContext, batching: Batching
    ) -> np.ndarray:
        """Every row of a call in the reference embedders' own batches (reference_batches.py)."""
        return reference_pass(self, raw, formatted, call, batching)


def _store(call: CallContext, texts, rows, embeddings: torch.Tensor, out: np.ndarray) -> None:
    batch = embeddings.cpu().numpy()
    check_finite(batch, lambda i: call.first_row[texts[rows[i]]])
    out[rows] = batch
    call.keep([texts[r] for r in rows], batch)


def _pinned(plan: BatchPlan):
    """Page-locked host tensors, so the copy to the GPU overlaps with its work."""
    for batch in plan:
        batch.features = {k: v.pin_memory() for k, v in batch.features.items()}
        yield batch
