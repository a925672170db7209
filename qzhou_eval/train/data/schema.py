"""Row types of the three data kinds (SPEC 3) and their validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qzhou_eval.errors import InvalidOptionError


class DataKind(str, Enum):
    RETRIEVAL = "retrieval"
    PAIR = "pair"  # NLI / STS
    CLASSIFICATION = "classification"

    @classmethod
    def from_str(cls, value: str | DataKind) -> DataKind:
        if isinstance(value, DataKind):
            return value
        aliases = {"nli": "pair", "sts": "pair", "nli/sts": "pair"}
        key = aliases.get(str(value).lower(), str(value).lower())
        try:
            return cls(key)
        except ValueError:
            raise InvalidOptionError.for_choice("data kind", value, [k.value for k in cls]) from None


@dataclass
class RetrievalRow:
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    instruction: str = ""
    dataset: str = ""


@dataclass
class PairRow:
    text_a: str
    text_b: str
    score: float
    dataset: str = ""
    instruction: str = ""


@dataclass
class ClassificationRow:
    text: str
    label: Any
    dataset: str = ""
    instruction: str = ""


ROW_TYPES = {DataKind.RETRIEVAL: RetrievalRow, DataKind.PAIR: PairRow, DataKind.CLASSIFICATION: ClassificationRow}
REQUIRED = {
    DataKind.RETRIEVAL: {"query": str, "positive": str},
    DataKind.PAIR: {"text_a": str, "text_b": str, "score": (int, float)},
    DataKind.CLASSIFICATION: {"text": str, "label": (str, int)},
}


def row_from_dict(kind: DataKind, record: dict[str, Any], where: str):
    """Validate one raw record and build its row; ``where`` names the file and line in errors.

    Raises:
        InvalidOptionError: a missing or mistyped field, naming ``where`` and the field.
    """
    if not isinstance(record, dict):
        raise InvalidOptionError(f"{where}: expected an object, got {type(record).__name__}")
    for name, types in REQUIRED[kind].items():
        value = record.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, types):
            raise InvalidOptionError(f"{where}: {kind.value} row needs {name!r} ({types}), got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise InvalidOptionError(f"{where}: {kind.value} row has an empty {name!r}")
    fields = ROW_TYPES[kind].__dataclass_fields__
    values = {k: v for k, v in record.items() if k in fields}
    if kind is DataKind.RETRIEVAL:
        negatives = values.get("negatives") or []
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise InvalidOptionError(f"{where}: 'negatives' must be a list of strings")
    if kind is DataKind.PAIR:
        values["score"] = float(values["score"])
    return ROW_TYPES[kind](**values)
