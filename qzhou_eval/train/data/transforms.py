"""Raw source shapes -> training rows (SPEC 3), each attaching the dataset's instruction.

- ``title_to_body``: title -> body/abstract (long bodies truncated), retrieval.
- ``claim_to_evidence``: Supports -> positive, Refutes -> hard negative, retrieval.
- ``qa_pairs``: question -> answer (single-turn QA, chat pairs), retrieval.
- ``pair_scores``: STS numeric or binary (yes/true -> 1, no/false -> 0) and NLI three-class
  (entailment/neutral/contradiction -> 2/1/0); every pair is also added swapped.
- ``classification_examples``: text = query, another text of the same label = positive, texts of
  other labels = negatives; labels kept for masking.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.data.schema import ClassificationRow, ExampleRow, PairRow, RetrievalRow

logger = logging.getLogger(__name__)

BINARY = {"yes": 1.0, "true": 1.0, "1": 1.0, "no": 0.0, "false": 0.0, "0": 0.0}
NLI = {"entailment": 2.0, "neutral": 1.0, "contradiction": 0.0}


def _rows(records: Iterable[Mapping[str, Any]], dataset: str, *fields: str) -> Iterable[Mapping[str, Any]]:
    """The records, each checked to be a mapping holding ``fields`` (a missing one is named, with the fix).

    Raises:
        InvalidOptionError: e.g. "dataset 'x' row 3 lacks field 'title' (it has ['head', 'text'])".
    """
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidOptionError(f"dataset {dataset!r} row {index} is a {type(record).__name__}, not a JSON object")
        missing = [f for f in fields if f not in record]
        if missing:
            raise InvalidOptionError(
                f"dataset {dataset!r} row {index} lacks field(s) {missing} (it has {sorted(record)}); map the transform "
                f"to this data's columns with transform_args, e.g. {{{missing[0]}: <column>}}"
            )
        yield record


def title_to_body(
    records: Iterable[Mapping[str, Any]],
    dataset: str,
    instruction: str,
    *,
    title: str = "title",
    body: str = "body",
    max_chars: int = 2000,
) -> list[RetrievalRow]:
    return [
        RetrievalRow(r[title], r[body][:max_chars], [], instruction, dataset)
        for r in _rows(records, dataset, title, body)
        if r.get(title) and r.get(body)
    ]


def claim_to_evidence(
    records: Iterable[Mapping[str, Any]],
    dataset: str,
    instruction: str,
    *,
    claim: str = "claim",
    evidence: str = "evidence",
    label: str = "label",
) -> list[RetrievalRow]:
    supports: dict[str, list[str]] = defaultdict(list)
    refutes: dict[str, list[str]] = defaultdict(list)
    for r in _rows(records, dataset, claim, evidence, label):
        verdict = str(r[label]).strip().lower()
        if verdict in ("supports", "support", "supported"):
            supports[r[claim]].append(r[evidence])
        elif verdict in ("refutes", "refute", "refuted"):
            refutes[r[claim]].append(r[evidence])
    return [
        RetrievalRow(c, pos, list(refutes.get(c, [])), instruction, dataset)
        for c, positives in supports.items()
        for pos in positives
    ]


def qa_pairs(
    records: Iterable[Mapping[str, Any]],
    dataset: str,
    instruction: str,
    *,
    question: str = "question",
    answer: str = "answer",
) -> list[RetrievalRow]:
    return [
        RetrievalRow(r[question], r[answer], [], instruction, dataset)
        for r in _rows(records, dataset, question, answer)
        if r.get(question) and r.get(answer)
    ]


def _score(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    key = str(value).strip().lower()
    if key in BINARY:
        return BINARY[key]
    if key in NLI:
        return NLI[key]
    try:
        return float(key)
    except ValueError:
        raise InvalidOptionError(
            f"label {value!r} is neither numeric, yes/no/true/false, nor entailment/neutral/contradiction"
        ) from None


def pair_scores(
    records: Iterable[Mapping[str, Any]],
    dataset: str,
    instruction: str,
    *,
    text_a: str = "sentence1",
    text_b: str = "sentence2",
    label: str = "score",
) -> list[PairRow]:
    rows = []
    for r in _rows(records, dataset, text_a, text_b, label):
        score = _score(r[label])
        rows.append(PairRow(r[text_a], r[text_b], score, dataset, instruction))
        rows.append(PairRow(r[text_b], r[text_a], score, dataset, instruction))
    return rows


def classification_examples(rows: list[ClassificationRow], *, negatives: int = 4, seed: int = 0) -> list[ExampleRow]:
    """Example-based retrieval rows from labelled texts (query, positive, negatives, label, dataset, instruction).

    Raises:
        InvalidOptionError: a dataset with a single label (no negatives possible).
    """
    by_label: dict[Any, list[str]] = defaultdict(list)
    for row in rows:
        by_label[row.label].append(row.text)
    if len(by_label) < 2:
        raise InvalidOptionError(
            f"classification dataset {rows[0].dataset if rows else '?'!r} has a single label {list(by_label)}; "
            "example-based rows need texts of other labels as negatives"
        )
    rng = random.Random(seed)
    labels = list(by_label)
    out, skipped = [], 0
    for row in rows:
        same = [t for t in by_label[row.label] if t != row.text]
        if not same:
            skipped += 1
            continue
        others = [t for lab in labels if lab != row.label for t in by_label[lab]]
        out.append(
            ExampleRow(
                query=row.text,
                positive=rng.choice(same),
                negatives=rng.sample(others, min(negatives, len(others))),
                label=row.label,
                dataset=row.dataset,
                instruction=row.instruction,
            )
        )
    if skipped:
        logger.warning("%d classification text(s) skipped: their label has no other example to be a positive", skipped)
    return out


# Raw-shape transforms a config may name (DatasetSpec.transform).
TRANSFORMS = {
    "title_to_body": title_to_body,
    "claim_to_evidence": claim_to_evidence,
    "qa_pairs": qa_pairs,
    "pair_scores": pair_scores,
}
