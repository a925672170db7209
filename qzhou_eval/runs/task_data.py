"""The data a task reads is the data that was named: checked before the model loads, fingerprinted by content.

For a ``--data_dir`` task folder every split file its ``README.md`` lists is opened (gzip streams are
read to the end, so a truncated or damaged file fails here, in seconds, with its name), the columns
mteb will read are checked where the task uses mteb's standard columns, and the folder gets a content
fingerprint over every byte. ``datasets`` then prepares that folder in a cache directory keyed by the
fingerprint, so it can never serve another copy's data under the same folder name. File digests are
memoised under a stamp an edit cannot keep (inode, size, mtime and ctime: ``integrity.content``), so a
repeated run only stats its files and an edit that restores the mtime is still seen. Every data path
stays inside its task folder.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval.errors import DataDirError
from qzhou_eval.integrity.content import ContentMemo
from qzhou_eval.integrity.dataset_readme import readme_configs

_DATA_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet", ".csv", ".csv.gz")


@dataclass(frozen=True)
class TaskData:
    """Where a task's data comes from, and the fingerprint its results are bound to."""

    task: str
    folder: Path | None  # None: the hub dataset named in the task's metadata
    fingerprint: str


@dataclass(frozen=True)
class _FileFacts:
    digest: str
    columns: tuple[str, ...] | None  # None: not knowable without parsing the whole file
    gaps: dict[str, int]  # column -> first (1-based) line where it is missing or null (JSON lines)


class _DigestMemo:
    """Digest + columns per file, memoised under a stamp no edit can keep (``integrity.content``)."""

    def __init__(self) -> None:
        self._memo = ContentMemo("task-data-files")

    def facts(self, path: Path) -> _FileFacts:
        facts = self._memo.facts(path, _derive_facts)
        cols = facts.get("columns")
        return _FileFacts(facts["digest"], tuple(cols) if cols is not None else None, dict(facts.get("gaps") or {}))

    def save(self) -> None:
        self._memo.save()


def _derive_facts(path: Path) -> dict[str, Any]:
    columns, gaps = _read_file(path)
    return {"columns": list(columns) if columns is not None else None, "gaps": gaps}


def _read_file(path: Path) -> tuple[tuple[str, ...] | None, dict[str, int]]:
    """Read the file to its end (a damaged gzip fails here): the first record's columns, and for JSON lines
    the first line at which each of them is missing or null (``{column: line}``, 1-based), so a bad late row
    is named before the model loads.

    Raises:
        DataDirError: empty, truncated, not decompressible, or not in its declared format.
    """
    if path.stat().st_size == 0:
        raise DataDirError(f"{path} is empty; copy the file again from its source")
    name = path.name
    gaps: dict[str, int] = {}
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            columns: tuple[str, ...] | None = tuple(pq.read_schema(path).names)
        elif name.endswith((".jsonl.gz", ".jsonl")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as fh:  # to the end: the gzip trailer's CRC catches damage anywhere
                first = fh.readline()
                columns = _columns_of_first_line(first, csv=False)
                if columns is not None:
                    _scan_json_lines(first, fh, columns, gaps)
                else:
                    while fh.read(1 << 20):
                        pass
        elif name.endswith((".json.gz", ".csv.gz")):
            with gzip.open(path, "rb") as fh:
                first = fh.readline()
                while fh.read(1 << 20):
                    pass
            columns = _columns_of_first_line(first, csv=name.endswith(".csv.gz"))
        else:
            with path.open("rb") as fh:
                first = fh.readline()
            columns = _columns_of_first_line(first, csv=name.endswith(".csv"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise DataDirError(
            f"{path} is unreadable or damaged ({type(exc).__name__}: {exc}); "
            "copy the file again from its source (qzhou-eval mirror re-downloads a task)"
        ) from None
    except Exception as exc:  # pyarrow raises its own types for a damaged parquet file
        raise DataDirError(f"{path} is not a readable parquet file ({exc}); copy it again from its source") from None
    return columns, gaps


def _scan_json_lines(first: bytes, fh, columns: tuple[str, ...], gaps: dict[str, int]) -> None:
    """Parse every line; note the first line where each column is absent or null. Blank lines are skipped."""
    for number, line in enumerate(itertools.chain([first], fh), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number} is not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number} is a JSON {type(record).__name__}, not an object")
        for column in columns:
            if column not in gaps and record.get(column) is None:
                gaps[column] = number


def _columns_of_first_line(line: bytes, csv: bool) -> tuple[str, ...] | None:
    text = line.decode("utf-8").strip()
    if not text:
        raise ValueError("the first line is empty")
    if csv:
        return tuple(c.strip() for c in text.split(","))
    if text.startswith("["):  # a JSON array file: columns need a full parse, leave them to datasets
        return None
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError(f"the first line is a JSON {type(record).__name__}, not an object (JSON lines)")
    return tuple(record)


def _retrieval_columns(config: str) -> list[tuple[str, ...]]:
    if config.endswith("corpus"):
        return [("_id", "id"), ("text",)]
    if config.endswith("queries"):
        return [("_id", "id"), ("text",)]
    if config.endswith("top_ranked"):
        return [("query-id",), ("corpus-ids",)]
    if config == "default" or config.endswith("qrels"):
        return [("query-id",), ("corpus-id",), ("score",)]
    return []


def _standard_columns(task) -> list[tuple[str, ...]] | None:
    """Columns every split file of a non-retrieval task needs, when the task reads mteb's standard ones."""
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.sts import AbsTaskSTS

    for base, names in (
        (AbsTaskSTS, lambda t: [*t.column_names, "score"]),
        (AbsTaskClassification, lambda t: [t.input_column_name, t.label_column_name]),
        (AbsTaskPairClassification, lambda t: [t.input1_column_name, t.input2_column_name, t.label_column_name]),
    ):
        if isinstance(task, base):
            if type(task).dataset_transform is not base.dataset_transform or type(task).load_data is not base.load_data:
                return None  # the task renames or builds its columns itself
            columns = names(task)
            return [(c,) for c in columns] if all(isinstance(c, str) for c in columns) else None
    return None


@dataclass(frozen=True)
class _ListedFile:
    config: str
    split: str
    path: Path
    facts: _FileFacts


def _fingerprint_folder(folder: Path, memo: _DigestMemo) -> tuple[str, list[_ListedFile]]:
    """Content fingerprint of a task folder (README + every listed file); no mteb needed."""
    configs = readme_configs(folder)
    digest = hashlib.sha256((folder / "README.md").read_bytes())  # the README is read whole each run
    listed = []
    for config, splits in sorted(configs.items()):
        for split, files in sorted(splits.items()):
            for path in files:
                try:
                    facts = memo.facts(path)
                except OSError as exc:
                    raise DataDirError(f"{path} cannot be read ({exc}); copy the task folder again") from None
                digest.update(f"{config}\0{split}\0{path.relative_to(folder).as_posix()}\0{facts.digest}\0".encode())
                listed.append(_ListedFile(config, split, path, facts))
    return "sha256:" + digest.hexdigest(), listed


def folder_fingerprints(root: Path, names: list[str]) -> dict[str, str | None]:
    """The fingerprint :func:`check_local_data` gives each ``root/<name>`` (None when it cannot be read)."""
    memo = _DigestMemo()
    out: dict[str, str | None] = {}
    try:
        for name in names:
            try:
                out[name] = _fingerprint_folder(root / name, memo)[0]
            except (DataDirError, OSError):
                out[name] = None
    finally:
        memo.save()
    return out


def check_task_folder(task, folder: Path, memo: _DigestMemo) -> TaskData:
    """Open every file ``folder``'s README lists, check splits and columns, and fingerprint the content.

    Raises:
        DataDirError: naming the file and what is wrong with it.
    """
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    fingerprint, listed = _fingerprint_folder(folder, memo)
    retrieval = isinstance(task, AbsTaskRetrieval) and type(task).load_data is AbsTaskRetrieval.load_data
    standard = None if isinstance(task, AbsTaskRetrieval) else _standard_columns(task)
    for item in listed:
        needed = _retrieval_columns(item.config) if retrieval else (standard or [])
        if item.facts.columns is None:
            continue
        missing = [" or ".join(alt) for alt in needed if not set(alt) & set(item.facts.columns)]
        if missing:
            raise DataDirError(
                f"{item.path} (config {item.config!r}, split {item.split!r}) lacks column(s) {missing} "
                f"that mteb reads for {task.metadata.name}; it has {list(item.facts.columns)}"
            )
        for alt in needed:
            present = [c for c in alt if c in item.facts.columns]
            if present and all(c in item.facts.gaps for c in present):
                column = present[0]
                raise DataDirError(
                    f"{item.path} line {item.facts.gaps[column]} has no value for {column!r} (missing or null), which "
                    f"mteb reads for {task.metadata.name}; fix or drop that row (copy the file again from its source)"
                )
    splits_by_config: dict[str, set[str]] = {}
    for item in listed:
        splits_by_config.setdefault(item.config, set()).add(item.split)
    all_splits = set().union(*splits_by_config.values())
    single_split = any(len(splits) == 1 for splits in splits_by_config.values())
    missing_splits = [s for s in task.metadata.eval_splits if s not in all_splits]
    if missing_splits and not (retrieval and single_split):
        raise DataDirError(
            f"{folder / 'README.md'} lists no {missing_splits} split, which mteb evaluates for "
            f"{task.metadata.name}; it lists {sorted(all_splits)}"
        )
    return TaskData(task.metadata.name, folder, fingerprint)


def check_local_data(tasks, root: Path) -> dict[str, TaskData]:
    """Every task's folder under ``root``, checked and fingerprinted (the tasks already point at them)."""
    memo = _DigestMemo()
    try:
        return {t.metadata.name: check_task_folder(t, root / t.metadata.name, memo) for t in tasks}
    finally:
        memo.save()


def hub_data(tasks) -> dict[str, TaskData]:
    """Tasks read from the hub: the dataset id and pinned revision are the fingerprint."""
    out = {}
    for task in tasks:
        meta: dict[str, Any] = task.metadata.dataset
        out[task.metadata.name] = TaskData(task.metadata.name, None, f"hub:{meta.get('path')}@{meta.get('revision')}")
    return out


@contextlib.contextmanager
def prepared_in_content_cache(data: TaskData) -> Iterator[None]:
    """Let ``datasets`` prepare a local folder in a cache directory named by its content fingerprint.

    ``datasets`` keys its cache of a local folder by the folder's name, not its content, so a copy
    replaced in place could be served from the old copy's cache.
    """
    if data.folder is None:
        yield
        return
    import datasets.config

    previous = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = Path(previous) / "qzhou-eval-by-content" / data.fingerprint.split(":")[-1][:32]
    try:
        yield
    finally:
        datasets.config.HF_DATASETS_CACHE = previous
