"""Run manifests on disk: writing and merging them under the folder lock, and whether a new run may join a folder.

The manifest's shape is :class:`qzhou_eval.run_manifest.RunManifest` (reports read the same object).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from qzhou_eval.errors import ManifestError
from qzhou_eval.record.inputs import RunInputs
from qzhou_eval.run_manifest import MANIFEST_GLOB, RunManifest, TaskEntry, manifest_filename
from qzhou_eval.runs.results_io import atomic_write_json


class FolderLock(Protocol):
    """The output folder's lock (runs/folder_lock.OutputFolderLock): one holder at a time for a read-modify-write."""

    def exclusive(self) -> AbstractContextManager: ...


logger = logging.getLogger(__name__)

_PACKAGES = ("torch", "transformers", "mteb", "sentence-transformers", "datasets", "qzhou-eval")


def manifest_path(output_dir: Path, benchmark: str) -> Path:
    return output_dir / manifest_filename(benchmark)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["qzhou-eval-git-commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _inputs_of(manifest: RunManifest) -> RunInputs | None:
    try:
        return RunInputs.from_record(manifest.inputs)
    except (KeyError, TypeError, ValueError):
        return None


def check_output_dir(output_dir: Path, inputs: RunInputs, suite: str) -> dict[Path, str]:
    """Manifests in ``output_dir`` whose run used other inputs: {manifest: what differs}.

    Another suite's manifest may differ only in its instruction set (each suite has its own).
    An unreadable manifest is not a conflict: it is moved aside, and the task records decide.
    """
    conflicts = {}
    for path in sorted(output_dir.glob(MANIFEST_GLOB)):
        old = load(path)
        if old is None:
            continue
        differs = inputs_differ(old, inputs, instructions=path == manifest_path(output_dir, suite))
        if differs:
            conflicts[path] = differs
    return conflicts


def inputs_differ(manifest: RunManifest, inputs: RunInputs, instructions: bool = True) -> str | None:
    """What in ``inputs`` differs from the inputs ``manifest`` records (None: the same), in words."""
    theirs = _inputs_of(manifest)
    if theirs is None:
        return "written by an older qzhou-eval that did not record its resolved inputs"
    diffs = theirs.differences(inputs, instructions=instructions)
    return "; ".join(diffs[:6]) if diffs else None


def new_manifest(**fields: Any) -> RunManifest:
    """A run's manifest header (``fields``: RunManifest's), stamped with the time and the package versions."""
    return RunManifest.from_record(
        {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(), **fields}
    )


def save(path: Path, manifest: RunManifest) -> None:
    manifest.updated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path, manifest.as_record())


def update(path: Path, base: RunManifest, tasks: dict[str, TaskEntry], lock: FolderLock) -> None:
    """Read-modify-write under the folder lock: this run's fields and task entries over what is on disk.

    Entries other processes (shards) wrote since this run started are kept.
    """
    with lock.exclusive():
        merge_and_save(path, base, tasks)


def merge_and_save(path: Path, base: RunManifest, tasks: dict[str, TaskEntry]) -> None:
    """The merge of :func:`update`, for a caller that already holds the folder lock."""
    current = load(path)
    header = {k: v for k, v in base.as_record().items() if v is not None and k != "tasks"}
    if current is None:
        merged = RunManifest.from_record(header)
    else:  # what this run knows over what is on disk; what it does not know (None) leaves the disk's value
        merged = RunManifest.from_record({**current.as_record(), **header, "created": current.created or base.created})
    merged.tasks.update(tasks)
    save(path, merged)


def load(path: Path) -> RunManifest | None:
    """A manifest's content; None when absent. An unreadable one is moved aside with a warning.

    A manifest is a summary: the task records (provenance.RecordStore) decide what is finished, so
    losing one never loses a result.
    """
    try:
        return RunManifest.from_record(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except ManifestError as exc:
        reason = str(exc)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        reason = f"{type(exc).__name__}: {exc}"
    target = path.with_name(f"{path.name}.unreadable-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, target)
    except OSError:
        target = path
    logger.warning(
        "run manifest %s is unreadable (%s); kept as %s. It is rebuilt from the task records; "
        "finished tasks are not re-run",
        path,
        str(reason)[:200],
        target,
    )
    return None
