"""Cleaning training rows (SPEC 3): exact and normalised deduplication, then a query–positive score floor.

Deduplication keys a row by the texts that make it a distinct example (retrieval: query + positive; pair:
the unordered text pair; classification: the text), first exactly, then after normalisation (Unicode NFKC,
case folding, whitespace collapsed, punctuation dropped), keeping the first occurrence. The score floor
embeds each row's two sides with an embedding model and drops rows whose cosine is below ``min_score``, or
in the lowest ``drop_percentile`` percent; the report gives the cut actually used.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import COSINE, PERCENT_OPEN_TOP, check_number
from qzhou_eval.train.data.schema import ClassificationRow, PairRow, RetrievalRow

_PUNCTUATION_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """The form two texts share when they differ only in case, width, spacing or punctuation."""
    return _PUNCTUATION_OR_SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _key(row, normalised: bool) -> tuple:
    norm = normalise if normalised else (lambda t: t)
    if isinstance(row, RetrievalRow):
        return norm(row.query), norm(row.positive)
    if isinstance(row, PairRow):
        return tuple(sorted((norm(row.text_a), norm(row.text_b))))
    if isinstance(row, ClassificationRow):
        return (norm(row.text),)
    raise TypeError(f"not a training row: {type(row).__name__}")


def _sides(row) -> tuple[str, str]:
    if isinstance(row, RetrievalRow):
        return row.query, row.positive
    if isinstance(row, PairRow):
        return row.text_a, row.text_b
    raise InvalidOptionError(f"a score floor needs rows with two sides (retrieval or pair), not {type(row).__name__}")


@dataclass
class CleaningReport:
    rows_in: int
    exact_duplicates: int
    normalised_duplicates: int
    below_score: int
    score_cut: float | None  # the floor applied (min_score, or the percentile's value)
    rows_out: int

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


def deduplicate(rows: Sequence) -> tuple[list, int, int]:
    """Rows without exact, then normalised, duplicates (first kept); and how many of each were dropped."""
    out, exact, normalised, seen_exact, seen_norm = [], 0, 0, set(), set()
    for row in rows:
        k_exact, k_norm = _key(row, False), _key(row, True)
        if k_exact in seen_exact:
            exact += 1
        elif k_norm in seen_norm:
            normalised += 1
        else:
            out.append(row)
        seen_exact.add(k_exact)
        seen_norm.add(k_norm)
    return out, exact, normalised


def pair_scores(
    rows: Sequence,
    embed: Callable[[list[str]], np.ndarray],
    embed_queries: Callable[[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Cosine of each row's two sides (the first side through ``embed_queries`` when given, e.g. instructed)."""
    firsts, seconds = zip(*(_sides(r) for r in rows)) if rows else ((), ())
    return paired_cosines((embed_queries or embed)(list(firsts)), embed(list(seconds)))


def paired_cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two equally long embedding arrays."""
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    second = second / np.linalg.norm(second, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", first, second)


def clean(
    rows: Sequence,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    *,
    min_score: float | None = None,
    drop_percentile: float | None = None,
    embed_queries: Callable[[list[str]], np.ndarray] | None = None,
) -> tuple[list, CleaningReport]:
    """Deduplicate, then (with ``embed``) apply the score floor; see the module docstring.

    Raises:
        InvalidOptionError: both or an out-of-range floor, or a floor without a model.
    """
    if min_score is not None and drop_percentile is not None:
        raise InvalidOptionError("give min_score or drop_percentile, not both")
    check_number("drop_percentile", drop_percentile, PERCENT_OPEN_TOP, none_ok=True)
    check_number("min_score", min_score, COSINE, none_ok=True)
    if (min_score is not None or drop_percentile is not None) and embed is None:
        raise InvalidOptionError("a score floor needs an embedding model to score the rows with")
    kept, exact, normalised = deduplicate(rows)
    cut, below = None, 0
    if kept and (min_score is not None or drop_percentile is not None):
        scores = pair_scores(kept, embed, embed_queries)
        cut = float(min_score if min_score is not None else np.percentile(scores, drop_percentile))
        keep = scores >= cut
        below = int((~keep).sum())
        kept = [r for r, k in zip(kept, keep) if k]
    report = CleaningReport(
        rows_in=len(rows),
        exact_duplicates=exact,
        normalised_duplicates=normalised,
        below_score=below,
        score_cut=None if cut is None else round(cut, 6),
        rows_out=len(kept),
    )
    return kept, report
