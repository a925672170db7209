"""Hard-negative mining (SPEC 3): rank the corpus for each query, take a rank window, drop likely false negatives.

For each query the corpus is ranked by cosine similarity under an existing embedding model (the harness
encoder, so the query instruction and pooling follow the protocol), its relevant documents are taken out
of the ranking, and the candidates are the documents ranked ``range_min + 1`` to ``range_max`` (1-based;
10 to 30 by default, skipping the nearest ten). A candidate scoring at or above ``margin`` times the
positive's score is dropped as a likely false negative (NV-Retriever's positive-aware "TopK-PercPos"
filter, 0.95), and the first ``num_negatives`` survivors in rank order are kept (4, as published). A query
with several positives gives one row per positive, each filtered against its own positive.

Memory stays bounded for corpora of millions of documents: the corpus is encoded and searched a chunk at a
time, keeping only each query's running top ``range_max + positives`` (no N x d corpus matrix is held).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import FRACTION, NON_NEGATIVE_INT, POSITIVE_INT, check_numeric_fields
from qzhou_eval.train.data.retrieval_folder import RetrievalData

logger = logging.getLogger(__name__)


_MINING_RANGES = {
    "range_min": NON_NEGATIVE_INT,
    "range_max": POSITIVE_INT,
    "margin": FRACTION,
    "num_negatives": POSITIVE_INT,
    "corpus_chunk": POSITIVE_INT,
    "query_chunk": POSITIVE_INT,
}


@dataclass(frozen=True)
class MiningConfig:
    range_min: int = 10
    range_max: int = 30
    margin: float = 0.95  # 0 turns the false-negative filter off
    num_negatives: int = 4
    corpus_chunk: int = 32768  # documents encoded and searched at a time
    query_chunk: int = 4096  # queries scored against a corpus chunk at a time

    def check(self) -> None:
        check_numeric_fields(self, "MiningConfig", _MINING_RANGES)
        if not 0 <= self.range_min < self.range_max:
            raise InvalidOptionError(
                f"--range_min {self.range_min} / --range_max {self.range_max}: need "
                "0 <= range_min < range_max (candidates are ranks range_min+1..range_max)"
            )
        if self.num_negatives < 1:
            raise InvalidOptionError(f"--num_negatives {self.num_negatives}: need at least 1")
        if self.num_negatives > self.range_max - self.range_min:
            raise InvalidOptionError(
                f"--num_negatives {self.num_negatives} exceeds the {self.range_max - self.range_min} "
                f"candidates of ranks {self.range_min + 1}..{self.range_max}; widen the window"
            )
        if not 0 <= self.margin <= 1:
            raise InvalidOptionError(
                f"--margin {self.margin}: a fraction of the positive's score, in [0, 1] (0: no filter)"
            )


@dataclass
class MinedRow:
    """A retrieval row the trainer reads (``query``, ``positive``, ``negatives``), with the ids it came from."""

    query: str
    positive: str
    negatives: list[str]
    query_id: str
    positive_id: str
    negative_ids: list[str]
    negative_scores: list[float]
    positive_score: float
    instruction: str = ""


@dataclass
class MiningReport:
    queries: int
    documents: int
    rows: int
    candidates: int  # window candidates over all (query, positive) pairs
    removed_by_filter: int  # of those, scoring >= margin x the positive's score
    rows_short: int  # pairs left with fewer than num_negatives survivors (not written)
    encode_seconds: float
    total_seconds: float
    config: dict

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


class RunningTopK:
    """Each query's best ``k`` (score, document index) so far, merged chunk by chunk."""

    def __init__(self, queries: torch.Tensor, k: int, query_chunk: int) -> None:
        self.queries = queries
        self.k = k
        self.query_chunk = query_chunk
        self.scores = torch.full((len(queries), 0), float("-inf"))
        self.indices = torch.zeros((len(queries), 0), dtype=torch.long)

    def add(self, documents: torch.Tensor, offset: int) -> None:
        scores, indices = [], []
        for start in range(0, len(self.queries), self.query_chunk):
            block = self.queries[start : start + self.query_chunk] @ documents.T
            both = torch.cat([self.scores[start : start + self.query_chunk], block], dim=1)
            ids = torch.cat(
                [
                    self.indices[start : start + self.query_chunk],
                    torch.arange(offset, offset + len(documents)).expand(len(block), -1),
                ],
                dim=1,
            )
            top = torch.topk(both, min(self.k, both.shape[1]), dim=1)  # sorted, highest first
            scores.append(top.values)
            indices.append(torch.gather(ids, 1, top.indices))
        self.scores, self.indices = torch.cat(scores), torch.cat(indices)


def _unit(vectors: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(np.asarray(vectors, dtype=np.float32)), dim=1)


def mine(
    data: RetrievalData,
    embed_queries: Callable[[list[str]], np.ndarray],
    embed_documents: Callable[[list[str]], np.ndarray],
    config: MiningConfig,
    instruction: str = "",
    progress: bool = True,
) -> tuple[list[MinedRow], MiningReport]:
    """Mine hard negatives for every (query, positive) pair of ``data``; see the module docstring for the rule."""
    from tqdm.auto import tqdm

    config.check()
    started = time.monotonic()
    query_ids = list(data.queries)
    doc_ids = list(data.corpus)
    doc_index = {d: i for i, d in enumerate(doc_ids)}
    most_positives = max(len(v) for v in data.relevant.values())
    queries = _unit(embed_queries([data.queries[q] for q in query_ids]))
    top = RunningTopK(queries, config.range_max + most_positives, config.query_chunk)
    positive_scores: dict[tuple[str, str], float] = {}
    wanted = {}  # doc index -> [(query row, doc id)] of relevant pairs, to score each positive exactly
    for row, q in enumerate(query_ids):
        for d in data.relevant[q]:
            wanted.setdefault(doc_index[d], []).append((row, q, d))
    encode_seconds = 0.0
    chunks = range(0, len(doc_ids), config.corpus_chunk)
    for start in tqdm(chunks, desc="mining: corpus chunks", disable=not progress):
        ids = doc_ids[start : start + config.corpus_chunk]
        t0 = time.monotonic()
        documents = _unit(embed_documents([data.corpus[d] for d in ids]))
        encode_seconds += time.monotonic() - t0
        top.add(documents, start)
        for i in range(start, start + len(ids)):
            for row, q, d in wanted.get(i, ()):
                positive_scores[(q, d)] = float(queries[row] @ documents[i - start])
    rows, candidates, removed, short = [], 0, 0, 0
    for row, q in enumerate(query_ids):
        positives = set(data.relevant[q])
        ranked = [
            (doc_ids[i], s)
            for i, s in zip(top.indices[row].tolist(), top.scores[row].tolist())
            if doc_ids[i] not in positives
        ][config.range_min : config.range_max]
        for d in data.relevant[q]:
            ceiling = config.margin * positive_scores[(q, d)]
            kept = [(c, s) for c, s in ranked if config.margin == 0 or s < ceiling]
            candidates += len(ranked)
            removed += len(ranked) - len(kept)
            if len(kept) < config.num_negatives:
                short += 1
                continue
            kept = kept[: config.num_negatives]
            rows.append(
                MinedRow(
                    query=data.queries[q],
                    positive=data.corpus[d],
                    negatives=[data.corpus[c] for c, _ in kept],
                    query_id=q,
                    positive_id=d,
                    negative_ids=[c for c, _ in kept],
                    negative_scores=[round(s, 6) for _, s in kept],
                    positive_score=round(positive_scores[(q, d)], 6),
                    instruction=instruction,
                )
            )
    report = MiningReport(
        queries=len(query_ids),
        documents=len(doc_ids),
        rows=len(rows),
        candidates=candidates,
        removed_by_filter=removed,
        rows_short=short,
        encode_seconds=round(encode_seconds, 2),
        total_seconds=round(time.monotonic() - started, 2),
        config=dataclasses.asdict(config),
    )
    logger.info(
        "mined %d rows from %d queries: %d of %d window candidates removed as likely false negatives; "
        "%d pairs with fewer than %d survivors left out",
        len(rows),
        len(query_ids),
        removed,
        candidates,
        short,
        config.num_negatives,
    )
    return rows, report


def rows_as_records(rows: Sequence[MinedRow]) -> list[dict]:
    return [dataclasses.asdict(r) for r in rows]
