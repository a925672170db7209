"""A batch of one training set -> one left-padded tensor batch of every text, prefixed as evaluation prefixes.

Which side gets the instruction, and with which template, is asked of the training set's
:class:`~qzhou_eval.instructions.registry.TaskInstruction` (evaluation's own rule), never decided here.
"""

from __future__ import annotations

from typing import Any

import torch

from qzhou_eval.encoder.inputs import InputFormatter
from qzhou_eval.instructions.registry import DOCUMENT, QUERY
from qzhou_eval.train.data.schema import DataKind, Loss, TrainingSet
from qzhou_eval.train.losses import TextKeys, text_key


def _keys(texts: list[str]) -> torch.Tensor:
    return torch.tensor([text_key(t) for t in texts], dtype=torch.int64)


class Collator:
    """Tokenises a batch's texts group by group (each with its own max length), then pads them together.

    Items are ``(TrainingSet, row)`` pairs, all of one set (the grouped sampler draws one dataset per batch);
    the set's kind and loss go out with the tensors, typed.
    """

    def __init__(
        self,
        tokenizer,
        formatter: InputFormatter,
        query_max_length: int,
        passage_max_length: int,
        hard_negatives: int,
        template: str,
    ) -> None:
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.hard_negatives = hard_negatives
        self.template = template

    def _encode(self, groups: list[tuple[list[str], list[str], int]]) -> dict[str, torch.Tensor]:
        features = []
        for texts, prefixes, max_length in groups:
            formatted = [self.formatter([text], prefix)[0] for text, prefix in zip(texts, prefixes)]
            ids = self.tokenizer(formatted, truncation=True, max_length=max_length)
            features.extend({k: ids[k][i] for k in ids.keys()} for i in range(len(texts)))
        return dict(self.tokenizer.pad(features, padding=True, return_tensors="pt"))

    def __call__(self, items: list[tuple[TrainingSet, Any]]) -> dict[str, Any]:
        dataset = items[0][0]
        if any(item[0] is not dataset for item in items):
            raise RuntimeError("a grouped batch mixed datasets; the sampler must draw one dataset per batch")
        rows = [row for _, row in items]

        def prefixes(side: str, repeat: list[int] | None = None) -> list[str]:
            per_row = [dataset.prefix(row, side, self.template) for row in rows]
            return per_row if repeat is None else [p for p, n in zip(per_row, repeat) for _ in range(n)]

        if dataset.kind is DataKind.PAIR:  # symmetric: both texts are "documents" of a symmetric task
            a, b = [r.text_a for r in rows], [r.text_b for r in rows]
            side = prefixes(DOCUMENT)
            features = self._encode([(a, side, self.query_max_length), (b, side, self.query_max_length)])
            return {
                "kind": dataset.kind,
                "loss": dataset.loss,
                "features": features,
                "counts": [len(a), len(b)],
                "scores": torch.tensor([float(r.score) for r in rows]),
            }
        k = min([self.hard_negatives, *[len(r.negatives or []) for r in rows]])
        queries = [r.query for r in rows]
        positives = [r.positive for r in rows]
        negatives = [n for r in rows for n in (r.negatives or [])[:k]]
        groups = [
            (queries, prefixes(QUERY), self.query_max_length),
            (positives, prefixes(DOCUMENT), self.passage_max_length),
        ]
        if negatives:
            groups.append((negatives, prefixes(DOCUMENT, [k] * len(rows)), self.passage_max_length))
        out = {
            "kind": dataset.kind,
            "loss": dataset.loss,
            "features": self._encode(groups),
            "counts": [len(queries), len(positives), len(negatives)],
            "hard_negatives": k,
            "keys": TextKeys(_keys(queries), _keys(positives), _keys(negatives) if negatives else None),
        }
        if dataset.loss is Loss.INFO_NCE_LABEL_MASK:
            labels = {lab: i for i, lab in enumerate(dict.fromkeys(str(r.label) for r in rows))}
            out["labels"] = torch.tensor([labels[str(r.label)] for r in rows])
        return out
