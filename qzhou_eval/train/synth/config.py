"""SynthConfig: what to synthesise from which rows, through which endpoint, under which limits; loaded from YAML."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.files import load_yaml
from qzhou_eval.integrity.numbers import (
    COSINE,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    OPEN_FRACTION,
    POSITIVE,
    POSITIVE_INT,
    Range,
    check_numeric_fields,
)
from qzhou_eval.integrity.outputs import same_file
from qzhou_eval.train.config import check_field_types
from qzhou_eval.train.data.schema import DataKind

OPERATIONS = ("paraphrase", "augmentation", "hard_negative")
# Operations each data kind may use (SPEC 3: NLI and classification data are only paraphrased).
OPERATIONS_BY_KIND = {
    DataKind.RETRIEVAL.value: OPERATIONS,
    DataKind.PAIR.value: ("paraphrase",),
    DataKind.CLASSIFICATION.value: ("paraphrase",),
}


OUTPUT_FILES = ("rows.jsonl", "rejected.jsonl", "report.json", "requests.jsonl")
_SYNTH_RANGES = {
    "max_source_rows": POSITIVE_INT,
    "concurrency": POSITIVE_INT,
    "max_retries": NON_NEGATIVE_INT,
    "timeout_s": POSITIVE,
    "backoff_s": NON_NEGATIVE,
    "max_requests": POSITIVE_INT,
    "max_tokens": POSITIVE_INT,
    "temperature": Range(low=0, high=2),
    "length_band": OPEN_FRACTION,
    "paraphrase_min_similarity": COSINE,
    "rewording_max_similarity": COSINE,
}


@dataclass
class SynthConfig:
    input: str  # rows of `kind` (JSONL/Parquet), as the trainer reads them
    kind: str
    output_dir: str  # rows.jsonl, rejected.jsonl, report.json, requests.jsonl (the resumable record)
    operations: list[str] = field(default_factory=lambda: ["paraphrase"])
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from the file
    max_source_rows: int = 60000  # SPEC 3: only datasets under this size are synthesised from
    concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 2.0  # first retry delay; doubles per attempt (a Retry-After header wins)
    max_requests: int | None = None  # budget: the run stops cleanly when reached (rerun to continue)
    max_tokens: int | None = None  # budget on total tokens the endpoint reports
    temperature: float = 0.7
    length_band: float = 0.15  # paraphrase length within +-15 % of its source (characters)
    scorer_model: str | None = None  # embedding model for the semantic checks; None: the bundled MiniLM
    paraphrase_min_similarity: float = 0.75
    rewording_max_similarity: float = 0.92  # an augmented query this close to its source is a rewording
    instruction: str = ""

    def __post_init__(self) -> None:
        check_field_types(self, "SynthConfig")
        kind = DataKind.from_str(self.kind).value
        self.kind = kind
        for op in self.operations:
            if op not in OPERATIONS_BY_KIND[kind]:
                raise InvalidOptionError(
                    f"SynthConfig.operations: {op!r} is not available for {kind} data; "
                    f"choose from {list(OPERATIONS_BY_KIND[kind])}"
                )
        check_numeric_fields(self, "SynthConfig", _SYNTH_RANGES)
        outputs = [Path(self.output_dir) / name for name in OUTPUT_FILES]
        if any(same_file(Path(self.input), out) for out in outputs):
            raise InvalidOptionError(
                f"SynthConfig.input {self.input} is one of the run's own outputs in {self.output_dir} "
                f"({', '.join(OUTPUT_FILES)}); copy it elsewhere or choose another output_dir"
            )

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if not key:
            raise InvalidOptionError(
                f"no API key: set the environment variable {self.api_key_env} "
                "(SynthConfig.api_key_env names it; keys never go in the config file)"
            )
        return key

    @classmethod
    def from_file(cls, path: str | Path) -> SynthConfig:
        path = Path(path)
        if not path.is_file():
            raise InvalidOptionError(f"synthesis config {str(path)!r} does not exist")
        data: Any = load_yaml(path, "synthesis config") or {}
        if not isinstance(data, dict):
            raise InvalidOptionError(f"{path} must hold a mapping of config keys")
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise InvalidOptionError(f"{path}: unknown config keys {unknown}; valid keys: {sorted(known)}")
        for key in ("input", "output_dir"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str((path.parent / data[key]).resolve())
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidOptionError(f"{path}: {exc}") from None
