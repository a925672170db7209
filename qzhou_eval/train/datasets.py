"""Config datasets -> row dicts the collator reads (one list per dataset, in config order)."""

from __future__ import annotations

import dataclasses
import logging

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.data.readers import read_records, read_rows
from qzhou_eval.train.data.schema import DataKind
from qzhou_eval.train.data.transforms import TRANSFORMS, classification_examples

logger = logging.getLogger(__name__)


def load_training_rows(config: TrainConfig) -> dict[str, list[dict]]:
    """Read every dataset of ``config``; classification texts become example-based rows.

    Raises:
        InvalidOptionError: unreadable or empty data, a single-label classification set.
    """
    out: dict[str, list[dict]] = {}
    for spec in config.datasets:
        if spec.transform:
            raw = read_records(spec.path)
            rows = TRANSFORMS[spec.transform](raw, spec.name, spec.instruction, **(spec.transform_args or {}))
        else:
            rows = read_rows(spec.path, spec.kind, dataset=spec.name, instruction=spec.instruction)
        if spec.kind == DataKind.CLASSIFICATION.value:
            records = classification_examples(rows, negatives=config.hard_negatives, seed=config.seed)
        else:
            records = [dataclasses.asdict(r) for r in rows]
        if not records:
            raise InvalidOptionError(f"dataset {spec.name!r} ({spec.path}) yields no training rows")
        for record in records:
            record["kind"] = spec.kind
            record["loss"] = spec.loss
            record["instruction"] = record.get("instruction") or spec.instruction
        out[spec.name] = records
        logger.info("dataset %s: %d %s rows", spec.name, len(records), spec.kind)
    return out
