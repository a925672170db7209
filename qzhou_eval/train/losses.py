"""The recipe's losses as functions of embeddings (SPEC 3), plus cross-rank gathering.

- ``info_nce``: the positive against all in-batch documents (positives and hard negatives of every
  row) and the other in-batch queries (the gte-style query-query term), cosine / temperature 0.02;
  with ``labels``, in-batch candidates of the query's own label are masked out (classification rows).
- In-batch copies are not negatives: with ``keys`` (hashes of the normalised texts), a query's
  candidates that are one of its own positives (the same text, or the positive of another row of the
  same query) are masked, and so are in-batch queries whose positive is one of them (the same query,
  or another claim about the same abstract). Retrieval data such as SciFact repeats
  both: 483 of its 763 mined rows share a positive with another row, and without the mask a
  batch read in file order sets a text against itself.
- ``cosent``: every pair of pairs with a higher gold score must get the higher cosine (scale 20).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from qzhou_eval.train.cleaning import normalise

INFO_NCE_TEMPERATURE = 0.02
COSENT_SCALE = 20.0


@dataclass(frozen=True)
class TextKeys:
    """int64 keys of a batch's texts (equal key = the same text after normalisation), for copy masking."""

    queries: torch.Tensor  # [B]
    positives: torch.Tensor  # [B]
    negatives: torch.Tensor | None = None  # [B * K]

    def to(self, device: torch.device) -> TextKeys:
        """On the embeddings' device (the Trainer moves tensors in dicts, not in this object)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TextKeys(move(self.queries), move(self.positives), move(self.negatives))


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` from all ranks, differentiably; returns (all rows, offset of the local rows).

    Gradients flow back to every rank's tensor (autograd all_gather), so with DDP's gradient averaging
    the update equals that of one process holding the whole global batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    if not x.is_floating_point():  # labels / scores without gradients
        parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
    else:
        parts = list(all_gather(x.contiguous()))
    return torch.cat(parts, dim=0), dist.get_rank() * x.shape[0]


def _gathered(x: torch.Tensor, gather: bool) -> torch.Tensor:
    """``x`` from every rank when ``gather`` (and a process group is up), else ``x``."""
    return gather_with_grad(x)[0] if gather else x


def info_nce(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    *,
    temperature: float = INFO_NCE_TEMPERATURE,
    query_negatives: bool = True,
    labels: torch.Tensor | None = None,
    gather: bool = True,
    keys: TextKeys | None = None,
) -> torch.Tensor:
    """InfoNCE over in-batch documents (+ hard negatives) and in-batch queries.

    Args:
        queries: [B, D]; positives: [B, D]; negatives: [B, K, D] hard negatives or None.
        temperature: logits are cosine / temperature.
        query_negatives: add the other in-batch queries as negatives.
        labels: [B] class ids; candidates whose label equals the query's are masked (not the positive).
        gather: in a multi-process run, take candidates from every rank.
        keys: text keys; a candidate that is a copy of one of the query's positives, or a query with
            such a positive, is masked (never the target itself).

    Returns:
        Scalar mean loss over the local queries.
    """
    q = F.normalize(queries, dim=-1)
    docs = F.normalize(positives, dim=-1)
    batch = q.shape[0]
    all_docs, offset = gather_with_grad(docs) if gather else (docs, 0)
    all_q = _gathered(q, gather)
    all_labels = None
    if labels is not None:
        all_labels = _gathered(labels, gather)
    candidates = [q @ all_docs.T]
    masks = []
    targets = torch.arange(batch, device=q.device) + offset
    rows = torch.arange(batch, device=q.device)
    if all_labels is not None:
        same = labels[:, None] == all_labels[None, :]
        same[rows, targets] = False  # keep the positive
        masks.append(same)
    else:
        masks.append(torch.zeros(batch, all_docs.shape[0], dtype=torch.bool, device=q.device))
    if negatives is not None:
        neg = F.normalize(negatives.reshape(-1, negatives.shape[-1]), dim=-1)
        all_neg = _gathered(neg, gather)
        candidates.append(q @ all_neg.T)
        masks.append(torch.zeros(batch, all_neg.shape[0], dtype=torch.bool, device=q.device))
    if query_negatives:
        candidates.append(q @ all_q.T)
        self_mask = torch.zeros(batch, all_q.shape[0], dtype=torch.bool, device=q.device)
        self_mask[rows, targets] = True  # a query is not its own negative
        if all_labels is not None:
            self_mask |= labels[:, None] == all_labels[None, :]
        masks.append(self_mask)
    if keys is not None:
        _mask_copies(
            masks, keys, rows, targets, gather, with_negatives=negatives is not None, with_queries=query_negatives
        )
    logits = torch.cat(candidates, dim=1) / temperature
    logits = logits.masked_fill(torch.cat(masks, dim=1), float("-inf"))
    return F.cross_entropy(logits, targets)


def _mask_copies(
    masks: list[torch.Tensor],
    keys: TextKeys,
    rows: torch.Tensor,
    targets: torch.Tensor,
    gather: bool,
    *,
    with_negatives: bool,
    with_queries: bool,
) -> None:
    """OR the copy masks into ``masks`` (in-batch documents, then hard negatives, then queries)."""
    all_queries = _gathered(keys.queries, gather)
    all_positives = _gathered(keys.positives, gather)
    same_query = (keys.queries[:, None] == all_queries[None, :]).float()  # [B, G]: rows asking the same query

    def is_relevant(candidates: torch.Tensor) -> torch.Tensor:
        """[B, C]: candidate c is the positive of some row of query i."""
        copies = (all_positives[:, None] == candidates[None, :]).float()  # [G, C]
        return (same_query @ copies) > 0

    documents = is_relevant(all_positives)
    if with_queries:  # another query with one of my positives (or my query) is not my negative either
        masks[-1] |= documents
    documents[rows, targets] = False  # the target is not masked
    masks[0] |= documents
    if with_negatives and keys.negatives is not None:
        all_negatives = _gathered(keys.negatives, gather)
        masks[1] |= is_relevant(all_negatives)


def text_key(text: str) -> int:
    """A stable signed 64-bit key of the normalised text (the same in every process, unlike ``hash``)."""
    digest = hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def cosent(
    emb_a: torch.Tensor, emb_b: torch.Tensor, scores: torch.Tensor, *, scale: float = COSENT_SCALE, gather: bool = True
) -> torch.Tensor:
    """CoSENT: log(1 + sum over (i, j) with score_i > score_j of exp(scale * (cos_j - cos_i))).

    With ``gather`` in a multi-process run, the pairs of every rank enter the ranking.
    """
    if gather:
        emb_a, _ = gather_with_grad(emb_a)
        emb_b, _ = gather_with_grad(emb_b)
        scores, _ = gather_with_grad(scores.detach())
    cos = F.cosine_similarity(emb_a, emb_b, dim=-1) * scale
    diff = cos[None, :] - cos[:, None]  # diff[i, j] = cos_j - cos_i
    keep = scores[:, None] > scores[None, :]
    diff = diff.masked_fill(~keep, float("-inf"))
    zero = torch.zeros(1, device=diff.device, dtype=diff.dtype)
    return torch.logsumexp(torch.cat([zero, diff.flatten()]), dim=0)
