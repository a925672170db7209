"""How many texts a task hands the encoder, from mteb's own descriptive statistics (shipped with mteb, offline).

The statistics describe each split's text columns (count, unique count, characters). What the encoder
sees also depends on how each task type samples them, which this module restates from mteb 2.x:

- Retrieval / Reranking: every query (query side) and every document (document side);
- STS, PairClassification: both text columns (one side: both get the same prefix);
- Summarization: the human and the machine summaries;
- Clustering (mteb's fast clustering): ``max_document_to_embed`` or ``max_fraction_of_documents_to_embed``
  of the split, drawn at random; the legacy clustering class embeds every text;
- Classification: the evaluation split, plus the union of ``n_experiments`` draws of ``samples_per_label``
  training texts per label (its expected size follows from the train split's label counts).

Unique texts are the statistics' per-column counts; where two columns share texts (an STS pair's two
sides) the encoder's deduplication makes the true count lower, so these are upper bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qzhou_eval.errors import InvalidOptionError

QUERY, DOCUMENT, TEXT = "query", "document", "text"  # the prompt type a side is encoded as (text: none)

_SIDE_OF_COLUMN = {
    "queries_text_statistics": QUERY,
    "documents_text_statistics": DOCUMENT,
    "text1_statistics": TEXT,
    "text2_statistics": TEXT,
    "text_statistics": TEXT,
    "human_summaries_statistics": TEXT,
    "machine_summaries_statistics": TEXT,
}
_NOT_ENCODED = {("Summarization", "text_statistics")}  # the source article is scored against, never embedded


@dataclass(frozen=True)
class SideCounts:
    """One side of a task (the texts encoded with one prefix): rows asked for, unique rows, their characters."""

    side: str
    texts: float
    unique_texts: float
    characters: float  # of the unique texts

    @property
    def mean_characters(self) -> float:
        return self.characters / self.unique_texts if self.unique_texts else 0.0

    def plus(self, other: SideCounts) -> SideCounts:
        return SideCounts(
            self.side,
            self.texts + other.texts,
            self.unique_texts + other.unique_texts,
            self.characters + other.characters,
        )

    def drawn(self, share: float) -> SideCounts:
        """A random ``share`` of the rows: a text repeated ``r = texts / unique`` times is drawn at least once
        with probability ``1 - (1 - share) ** r``."""
        if share >= 1 or not self.unique_texts:
            return self
        repeats = self.texts / self.unique_texts
        unique = self.unique_texts * (1 - (1 - share) ** repeats)
        return SideCounts(self.side, self.texts * share, unique, self.mean_characters * unique)


@dataclass(frozen=True)
class TaskCounts:
    """A task's sides (query, document or plain text) as mteb will ask the encoder for them."""

    task: str
    task_type: str
    language: str  # ISO 639-3 of the task's first evaluation language ("eng", "cmn")
    sides: tuple[SideCounts, ...]

    @property
    def texts(self) -> float:
        return sum(s.texts for s in self.sides)

    def with_shared(self, side: str, share: float) -> TaskCounts:
        """``side``'s unique texts times ``share`` (the distinct share measured where columns repeat each other)."""
        sides = tuple(
            SideCounts(s.side, s.texts, s.unique_texts * share, s.characters * share) if s.side == side else s
            for s in self.sides
        )
        return TaskCounts(self.task, self.task_type, self.language, sides)

    @property
    def unique_texts(self) -> float:
        return sum(s.unique_texts for s in self.sides)

    @property
    def characters(self) -> float:
        return sum(s.characters for s in self.sides)


def task_counts(task) -> TaskCounts:
    """The counts of an mteb task object (its selected subsets and evaluation splits).

    Raises:
        InvalidOptionError: mteb ships no statistics for the task (name the fix: a --data_dir copy to count).
    """
    stats = task.metadata.descriptive_stats
    name, task_type = task.metadata.name, task.metadata.type
    if not stats:
        raise InvalidOptionError(
            f"mteb ships no descriptive statistics for {name}; plan cannot count its texts — leave it out "
            "(--exclude_tasks) or plan it from a local copy with --data_dir"
        )
    sides: dict[str, SideCounts] = {}
    for split in task.eval_splits:
        for block in _subset_blocks(stats, split, task.hf_subsets, name):
            for side in _block_sides(block, task_type):
                sides[side.side] = sides[side.side].plus(side) if side.side in sides else side
    if task_type == "Classification":
        train = _training_draw(task, stats)
        if train is not None:
            sides[TEXT] = sides[TEXT].plus(train) if TEXT in sides else train
    share = _clustering_share(task, sides)
    return TaskCounts(name, task_type, task_language(task), tuple(s.drawn(share) for s in sides.values()))


def _subset_blocks(stats: dict[str, Any], split: str, subsets, name: str) -> list[dict[str, Any]]:
    """The statistics of each selected subset of ``split`` (the split's own block for a one-subset task)."""
    if split not in stats:
        raise InvalidOptionError(
            f"mteb's statistics for {name} have no split {split!r} (they have {sorted(stats)}); plan cannot count it"
        )
    block = stats[split]
    per_subset = block.get("hf_subset_descriptive_stats") or {}
    chosen = [per_subset[s] for s in subsets if s in per_subset]
    return chosen or [block]


def _block_sides(block: dict[str, Any], task_type: str) -> list[SideCounts]:
    sides = []
    for column, side in _SIDE_OF_COLUMN.items():
        col = block.get(column)
        if not isinstance(col, dict) or (task_type, column) in _NOT_ENCODED:
            continue
        total, mean = col.get("total_text_length") or 0, col.get("average_text_length") or 0
        texts = total / mean if mean else 0
        unique = min(col.get("unique_texts") or texts, texts)
        sides.append(SideCounts(side, texts, unique, mean * unique))
    return sides


def _training_draw(task, stats: dict[str, Any]) -> SideCounts | None:
    """The expected union of mteb's classification draws: for a label with ``c`` training texts, each of the
    ``n`` experiments takes ``k`` of them, so ``c * (1 - (1 - k/c) ** n)`` distinct texts (all ``c`` when c <= k)."""
    split = getattr(task, "train_split", "train")
    if split not in stats:
        return None
    k, n = getattr(task, "samples_per_label", 8), getattr(task, "n_experiments", 10)
    total = None
    for block in _subset_blocks(stats, split, task.hf_subsets, task.metadata.name):
        labels = (block.get("label_statistics") or {}).get("labels") or {}
        col = block.get("text_statistics") or {}
        drawn = sum(c if c <= k else c * (1 - (1 - k / c) ** n) for c in (v.get("count", 0) for v in labels.values()))
        side = SideCounts(TEXT, drawn, drawn, drawn * (col.get("average_text_length") or 0))
        total = side if total is None else total.plus(side)
    return total


def _clustering_share(task, sides: dict[str, SideCounts]) -> float:
    """The share of a clustering split mteb embeds (fast clustering subsamples; legacy embeds all)."""
    if task.metadata.type != "Clustering":
        return 1.0
    cap, fraction = (
        getattr(task, "max_document_to_embed", None),
        getattr(task, "max_fraction_of_documents_to_embed", None),
    )
    rows = sum(s.texts for s in sides.values())
    if not rows or (cap is None and fraction is None):
        return 1.0
    embedded = min(rows, cap if cap is not None else int(fraction * rows))
    return embedded / rows


def task_language(task) -> str:
    langs = task.metadata.eval_langs
    if isinstance(langs, dict):
        langs = langs.get(task.hf_subsets[0]) or next(iter(langs.values()))
    return langs[0].split("-")[0]
