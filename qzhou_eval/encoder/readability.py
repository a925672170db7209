"""Can the model read the task? A probe on a sample of each task's texts, before anything is scored.

Two failures give a plausible-looking score with exit code 0 unless someone looks: a tokenizer that
maps the task's script to unknown tokens (an English WordPiece on Chinese text), and a model that maps
distinct texts to the same input or vector (a missing or wrong tokenizer, broken weights). For each
encode call the probe takes a seeded sample of the distinct texts and counts

- unknown pieces: tokens equal to the tokenizer's ``unk_token_id`` (byte-level BPEs have none), and
  texts that contain at least one;
- token collapse: distinct texts whose token sequence, as the model sees it (prefix, template,
  truncation), equals another sampled text's;
- embedding collapse: distinct texts whose vector equals another's (to 5 decimals).

Figures that set the defaults (all-MiniLM-L6-v2, 512 sampled texts): STSBenchmark 0 % unknown pieces,
0 % collapse; LCQMC 74 % unknown pieces, 100 % of texts with one, 14 % token collapse — a partial
loss, so a loud warning and the published score still reproduces. A folder whose tokenizer reads
everything as one token collapses 100 %. A total collapse (``collapse_error``, default 90 %) is an
error naming the task before its corpus is encoded; a share of unknown pieces or collapse at or
above ``warn`` (default 5 %) is a warning, and every figure goes into the manifest and the report.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from qzhou_eval.errors import UnreadableTaskError
from qzhou_eval.record.readability_limits import ReadabilityLimits

SAMPLE_SIZE = 512
MIN_TEXTS_FOR_ERROR = 20  # a handful of distinct texts says nothing about a collapse


@dataclass
class Readability:
    """Counts over the sampled distinct texts of one task (all its encode calls together)."""

    texts: int = 0
    with_unknown: int = 0
    pieces: int = 0
    unknown_pieces: int = 0
    token_collapsed: int = 0
    embedding_collapsed: int = 0

    @property
    def unknown_text_share(self) -> float:
        return self.with_unknown / self.texts if self.texts else 0.0

    @property
    def unknown_piece_share(self) -> float:
        return self.unknown_pieces / self.pieces if self.pieces else 0.0

    @property
    def token_collapse_share(self) -> float:
        return self.token_collapsed / self.texts if self.texts else 0.0

    @property
    def embedding_collapse_share(self) -> float:
        return self.embedding_collapsed / self.texts if self.texts else 0.0

    def add(self, other: Readability) -> None:
        """Count ``other``'s texts in too (a task's encode calls add up)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_record(self) -> dict[str, Any]:
        return {
            "sampled_texts": self.texts,
            "texts_with_unknown_tokens": round(self.unknown_text_share, 4),
            "unknown_token_pieces": round(self.unknown_piece_share, 4),
            "token_collapse": round(self.token_collapse_share, 4),
            "embedding_collapse": round(self.embedding_collapse_share, 4),
        }

    def summary(self) -> str:
        return (
            f"{self.unknown_text_share:.0%} of sampled texts contain unknown tokens "
            f"({self.unknown_piece_share:.0%} of token pieces); {self.token_collapse_share:.0%} of distinct texts "
            f"collapse to another's tokens, {self.embedding_collapse_share:.0%} to another's embedding "
            f"({self.texts} texts sampled)"
        )

    def needs_warning(self, limits: ReadabilityLimits) -> bool:
        shares = (self.unknown_piece_share, self.token_collapse_share, self.embedding_collapse_share)
        return any(s >= limits.warn for s in shares) and self.texts > 0


def sample_distinct(inputs: list[str], seed: str) -> list[int]:
    """Row indices of up to SAMPLE_SIZE distinct inputs, chosen by a seed derived from the task and side."""
    first: dict[str, int] = {}
    for row, text in enumerate(inputs):
        first.setdefault(text, row)
    rows = list(first.values())
    if len(rows) <= SAMPLE_SIZE:
        return rows
    return sorted(random.Random(seed).sample(rows, SAMPLE_SIZE))


def token_counts(tokenizer, texts: list[str], max_length: int) -> tuple[int, int, int, int]:
    """(texts with an unknown piece, pieces, unknown pieces, texts whose token sequence repeats an earlier one)."""
    if not texts:
        return 0, 0, 0, 0
    ids = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    special = set(getattr(tokenizer, "all_special_ids", []) or []) - {unk}
    with_unknown = pieces = unknown = 0
    for seq in ids:
        real = [t for t in seq if t not in special]
        pieces += len(real)
        hits = sum(1 for t in real if t == unk) if unk is not None else 0
        unknown += hits
        with_unknown += hits > 0
    collapsed = len(ids) - len({tuple(seq) for seq in ids})
    return with_unknown, pieces, unknown, collapsed


def embedding_collapsed(vectors: np.ndarray) -> int:
    """Rows equal to an earlier row to 5 decimals (the same tokens in other batch company differ in the last bits)."""
    if len(vectors) == 0:
        return 0
    rounded = np.round(np.asarray(vectors, dtype=np.float32), 5) + 0.0  # + 0.0: -0.0 and 0.0 are one value
    return len(rounded) - len({row.tobytes() for row in rounded})


def check_collapse(task: str, share: float, what: str, readability: Readability, limits: ReadabilityLimits) -> None:
    """Raise when ``share`` of the sampled distinct texts collapse (a total collapse: the model cannot read them).

    Raises:
        UnreadableTaskError: naming the task, the figure and the likely cause.
    """
    if readability.texts >= MIN_TEXTS_FOR_ERROR and share >= limits.collapse_error:
        raise UnreadableTaskError(
            f"{task}: {share:.0%} of {readability.texts} sampled distinct texts collapse to another text's {what} "
            f"({readability.summary()}); the model cannot tell this task's texts apart — most likely its tokenizer "
            "is missing, wrong for this language, or the weights are damaged. Check the checkpoint folder "
            "(--collapse_error 1.0 turns this check off)"
        )
