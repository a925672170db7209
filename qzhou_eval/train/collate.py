"""Batches of one dataset -> one left-padded tensor batch of every text, with the same prefixes as evaluation."""

from __future__ import annotations

from typing import Any

import torch

from qzhou_eval.constants import INSTRUCTION_TEMPLATE
from qzhou_eval.encoder.inputs import InputFormatter
from qzhou_eval.instructions.registry import format_instruction
from qzhou_eval.train.data.schema import DataKind
from qzhou_eval.train.losses import TextKeys, text_key


def _keys(texts: list[str]) -> torch.Tensor:
    return torch.tensor([text_key(t) for t in texts], dtype=torch.int64)


def _prefix(instruction: str) -> str:
    return format_instruction(INSTRUCTION_TEMPLATE, instruction) if instruction else ""


class Collator:
    """Tokenises a batch's texts group by group (each with its own max length), then pads them together.

    Retrieval: instructed queries, plain passages. Pairs and classification rows are symmetric, as in
    evaluation: every text gets the instruction.
    """

    def __init__(
        self, tokenizer, formatter: InputFormatter, query_max_length: int, passage_max_length: int, hard_negatives: int
    ) -> None:
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.hard_negatives = hard_negatives

    def _encode(self, groups: list[tuple[list[str], str, int]]) -> dict[str, torch.Tensor]:
        features = []
        for texts, prefix, max_length in groups:
            ids = self.tokenizer(self.formatter(texts, prefix), truncation=True, max_length=max_length)
            features.extend({k: ids[k][i] for k in ids.keys()} for i in range(len(texts)))
        return dict(self.tokenizer.pad(features, padding=True, return_tensors="pt"))

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        kind = rows[0]["kind"]
        instruction = rows[0].get("instruction", "")
        if any(r["kind"] != kind for r in rows):
            raise RuntimeError("a grouped batch mixed data kinds; the sampler must draw one dataset per batch")
        if kind == DataKind.PAIR.value:
            a, b = [r["text_a"] for r in rows], [r["text_b"] for r in rows]
            p = _prefix(instruction)
            features = self._encode([(a, p, self.query_max_length), (b, p, self.query_max_length)])
            return {
                "kind": kind,
                "features": features,
                "counts": [len(a), len(b)],
                "scores": torch.tensor([float(r["score"]) for r in rows]),
            }
        k = min([self.hard_negatives, *[len(r.get("negatives") or []) for r in rows]])
        queries = [r["query"] for r in rows]
        positives = [r["positive"] for r in rows]
        negatives = [n for r in rows for n in (r.get("negatives") or [])[:k]]
        symmetric = kind == DataKind.CLASSIFICATION.value
        q_prefix, d_prefix = _prefix(instruction), _prefix(instruction) if symmetric else ""
        groups = [(queries, q_prefix, self.query_max_length), (positives, d_prefix, self.passage_max_length)]
        if negatives:
            groups.append((negatives, d_prefix, self.passage_max_length))
        out = {
            "kind": kind,
            "features": self._encode(groups),
            "counts": [len(queries), len(positives), len(negatives)],
            "hard_negatives": k,
            "keys": TextKeys(_keys(queries), _keys(positives), _keys(negatives) if negatives else None),
        }
        if symmetric and rows[0].get("loss", "info_nce_label_mask") == "info_nce_label_mask":
            labels = {lab: i for i, lab in enumerate(dict.fromkeys(str(r["label"]) for r in rows))}
            out["labels"] = torch.tensor([labels[str(r["label"])] for r in rows])
        return out
