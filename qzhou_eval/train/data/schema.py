"""Row types of the three data kinds (SPEC 3) and their validation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import TaskInstruction


class DataKind(str, Enum):
    RETRIEVAL = "retrieval"
    PAIR = "pair"  # NLI / STS
    CLASSIFICATION = "classification"

    @property
    def symmetric(self) -> bool:
        """Both sides are instructed, as evaluation instructs documents of symmetric tasks (STS, pairs,
        classification); retrieval instructs its queries only."""
        return self is not DataKind.RETRIEVAL

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


class Loss(str, Enum):
    """The training objective of a dataset (SPEC 3)."""

    INFO_NCE = "info_nce"
    INFO_NCE_LABEL_MASK = "info_nce_label_mask"  # in-batch texts of the query's own label are not negatives
    COSENT = "cosent"


# Losses a dataset of each kind may use; the first is the recipe's default (SPEC 3).
LOSSES_BY_KIND: dict[DataKind, tuple[Loss, ...]] = {
    DataKind.RETRIEVAL: (Loss.INFO_NCE,),
    DataKind.CLASSIFICATION: (Loss.INFO_NCE_LABEL_MASK, Loss.INFO_NCE),
    DataKind.PAIR: (Loss.COSENT,),
}


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


@dataclass
class ExampleRow:
    """A classification text as a retrieval row: another text of its label is the positive (transforms.py)."""

    query: str
    positive: str
    negatives: list[str]
    label: Any
    dataset: str = ""
    instruction: str = ""


@dataclass(frozen=True)
class TrainingSet:
    """One dataset ready to train on: its kind, loss and task instruction travel with every batch drawn from it."""

    name: str
    kind: DataKind
    loss: Loss
    instruction: TaskInstruction  # the instruction, and whether documents get it (evaluation's rule)
    rows: list = field(hash=False, compare=False)  # RetrievalRow | PairRow | ExampleRow

    def prefix(self, row, side: str, template: str) -> str:
        """The prefix ``row``'s text on ``side`` gets: evaluation's rule, the row's own instruction if it has one."""
        own = getattr(row, "instruction", "") or self.instruction.instruction
        return replace(self.instruction, instruction=own).prefix(template, side)


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
