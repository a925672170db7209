"""Read rows of one kind from JSONL, Parquet, or a ``datasets`` dataset, with errors naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.data.schema import DataKind, row_from_dict


def _records(path: Path) -> Iterable[tuple[str, Any]]:
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".jsonl.gz", ".json"):
        import gzip

        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidOptionError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    elif suffix == ".parquet":
        import pandas as pd

        for number, record in enumerate(pd.read_parquet(path).to_dict("records"), start=1):
            yield f"{path}: row {number}", record
    else:
        raise InvalidOptionError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .jsonl.gz or .parquet")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Raw records of a JSONL/Parquet file (for the source-shape transforms)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidOptionError(f"training data file {str(path)!r} does not exist")
    records = [record for _, record in _records(path)]
    if not records:
        raise InvalidOptionError(f"{path} holds no rows; an empty dataset cannot be trained on")
    return records


def read_rows(
    source: str | Path | Any, kind: str | DataKind, dataset: str | None = None, instruction: str | None = None
) -> list:
    """Rows of ``kind`` from a file path or an in-memory ``datasets.Dataset``.

    ``dataset`` and ``instruction`` fill rows that do not carry their own.

    Raises:
        InvalidOptionError: unknown kind, missing file, malformed record (file and line named), or no rows.
    """
    kind = DataKind.from_str(kind)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidOptionError(f"training data file {str(path)!r} does not exist")
        records, label = _records(path), str(path)
        default_name = path.name.split(".")[0]
    else:
        records = (
            (f"{getattr(source, 'info', None) and source.info.dataset_name or 'dataset'}: row {i}", r)
            for i, r in enumerate(source, start=1)
        )
        label, default_name = "dataset", "dataset"
    rows = []
    for where, record in records:
        row = row_from_dict(kind, record, where)
        row.dataset = row.dataset or dataset or default_name
        if instruction and not row.instruction:
            row.instruction = instruction
        rows.append(row)
    if not rows:
        raise InvalidOptionError(f"{label} holds no rows; an empty dataset cannot be trained on")
    return rows
