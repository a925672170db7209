"""Find and read result files in mteb's layout: <root>/<org__model>/<revision>/<Task>.json.

Works on a checkout of the public results repository (its ``results/`` folder), mteb's own results
cache, and the folders the runners write. When a model has several revision folders, each task is
taken from one folder by a documented rule (``choose_revision``), and the choice is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from qzhou_eval.errors import ResultFileError
from qzhou_eval.results.layout import NO_REVISION, RESULTS_DIRNAME, model_name_of


@dataclass(frozen=True)
class TaskFile:
    task: str
    path: Path
    revision: str
    mteb_version: str | None
    scores: dict[str, list[dict[str, Any]]]


@dataclass
class ModelResults:
    """One model's chosen result per task, and which revision folder each came from."""

    name: str
    folder: Path
    tasks: dict[str, TaskFile] = field(default_factory=dict)

    def revisions_used(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task_file in self.tasks.values():
            counts[task_file.revision] = counts.get(task_file.revision, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def read_task_file(path: Path, revision: str) -> TaskFile:
    """Parse one task JSON, checking the fields scores are computed from.

    Raises:
        ResultFileError: naming the file and what is wrong with it.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultFileError(
            f"{path}: not valid UTF-8 JSON ({exc}); the file is truncated or corrupt — delete it "
            "and re-run the task (or re-download it)"
        ) from exc
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot be read ({exc})") from exc
    scores = data.get("scores") if isinstance(data, dict) else None
    if isinstance(data, dict) and scores is None and ("mteb_dataset_name" in data or "mteb_version" in data):
        scores = _legacy_scores(path)  # mteb < 1.11 files: mteb's own reader converts them
    if not isinstance(scores, dict) or not all(isinstance(v, list) for v in scores.values()):
        raise ResultFileError(f"{path}: has no 'scores' mapping of split -> list; it is not an mteb task result")
    for split, entries in scores.items():
        for entry in entries:
            if not isinstance(entry, dict):
                raise ResultFileError(f"{path}: split {split!r} holds a {type(entry).__name__}, not a score entry")
    return TaskFile(data.get("task_name") or path.stem, path, revision, data.get("mteb_version"), scores)


def _legacy_scores(path: Path) -> dict | None:
    from mteb.results import TaskResult

    try:
        return TaskResult.from_disk(path).scores
    except Exception as exc:
        raise ResultFileError(f"{path}: an old-format mteb result that mteb cannot convert ({exc})") from exc


def results_root(path: Path) -> Path:
    """Accept a results repository checkout (its ``results/``), mteb's cache folder (``results/`` or
    ``remote/results/``), or a folder of ``<org__model>`` folders itself."""
    path = Path(path)
    if not path.is_dir():
        raise ResultFileError(f"results folder {str(path)!r} does not exist")
    if any("__" in p.name for p in path.iterdir() if p.is_dir()):
        return path
    for candidate in (path / RESULTS_DIRNAME, path / "remote" / RESULTS_DIRNAME):
        if candidate.is_dir() and any("__" in p.name for p in candidate.iterdir() if p.is_dir()):
            return candidate
    return path


def model_folders(root: Path) -> dict[str, Path]:
    """{org/name: folder} for every ``org__name`` folder under ``root``; a run folder's ``results/`` (mteb's
    layout) and its top level (runs made before it) are both read, the former winning for the same model."""
    root = results_root(root)
    inner = root / RESULTS_DIRNAME
    levels = [root] if root.name == RESULTS_DIRNAME or not inner.is_dir() else [root, inner]
    out = {}
    for level in levels:
        for folder in sorted(p for p in level.iterdir() if p.is_dir()):
            name = model_name_of(folder.name)
            if name is not None:
                out[name] = folder
    return out


@lru_cache(maxsize=1)
def _registered_revisions() -> dict[str, str]:
    """Main revision of every model mteb knows (from its installed registry, no network)."""
    import mteb

    try:
        return {m.name: m.revision for m in mteb.get_model_metas() if m.name and m.revision}
    except Exception:
        return {}


def _version_key(version: str | None) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version)) if version else (0, Version("0"))
    except InvalidVersion:
        return (0, Version("0"))


def choose_revision(model_name: str, candidates: list[TaskFile]) -> TaskFile:
    """The rule mteb's leaderboard uses to join revisions, made fully deterministic.

    Prefer, in order: the model's main revision in mteb's registry; a file that records its mteb
    version; a real revision over ``external``/``no_revision_available``; the newest mteb version;
    then the alphabetically first revision name.
    """
    main = _registered_revisions().get(model_name)

    def key(tf: TaskFile):
        return (
            tf.revision != main,
            tf.mteb_version is None,
            tf.revision in NO_REVISION,
            tuple(-x for x in _version_key(tf.mteb_version)[1].release) if tf.mteb_version else (),
            tf.revision,
        )

    return sorted(candidates, key=key)[0]


def load_model_results(folder: Path, model_name: str, tasks: list[str] | None = None) -> ModelResults:
    """Read a model folder (all revision subfolders), choosing one file per task."""
    by_task: dict[str, list[TaskFile]] = {}
    revision_dirs = [p for p in sorted(folder.iterdir()) if p.is_dir()]
    if not revision_dirs and any(folder.glob("*.json")):
        raise ResultFileError(
            f"{folder}: task files sit directly in the model folder; mteb's layout is <org__model>/<revision>/<Task>.json"
        )
    for rev_dir in revision_dirs:
        for path in sorted(rev_dir.glob("*.json")):
            if path.name == "model_meta.json" or (tasks is not None and path.stem not in tasks):
                continue
            tf = read_task_file(path, rev_dir.name)
            by_task.setdefault(tf.task, []).append(tf)
    result = ModelResults(model_name, folder)
    for task, candidates in by_task.items():
        result.tasks[task] = _verified(choose_revision(model_name, candidates))
    return result


def _verified(task_file: TaskFile) -> TaskFile:
    """A result in a qzhou-eval run folder is shown only if it is the file its record names.

    Raises:
        ResultFileError: naming the file and why it is not trusted.
    """
    from qzhou_eval.record.provenance import unverified_reason

    reason = unverified_reason(task_file.path)
    if reason is not None:
        raise ResultFileError(f"{task_file.path} {reason}")
    return task_file


def load_models(root: Path, names: list[str] | None, tasks: list[str] | None) -> list[ModelResults]:
    """Load ``names`` (or every model) under a results root.

    Raises:
        ResultFileError: a requested model that is not there, naming the closest names.
    """
    import difflib

    folders = model_folders(root)
    if names is None:
        names = list(folders)
    missing = [n for n in names if n not in folders]
    if missing:
        hints = {n: difflib.get_close_matches(n, list(folders), n=3, cutoff=0.3) for n in missing}
        detail = "; ".join(f"{n!r} (closest: {h})" if h else repr(n) for n, h in hints.items())
        raise ResultFileError(f"model(s) not found under {results_root(root)}: {detail}")
    return [load_model_results(folders[n], n, tasks) for n in names]
