"""The run manifest (``<output_dir>/qzhou-run-<suite>.json``) as typed objects: the one schema ``runs/`` writes and
``report/`` reads. Model-free (JSON only). Keys this version does not know are kept, so a manifest written by a
newer or older qzhou-eval survives a round trip through this one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval.errors import ManifestError

MANIFEST_GLOB = "qzhou-run-*.json"


def manifest_filename(suite: str) -> str:
    """``MTEB(eng, v2)`` -> ``qzhou-run-MTEB-eng-v2.json``; a run of named tasks -> ``qzhou-run-tasks.json``."""
    return f"qzhou-run-{re.sub(r'[^A-Za-z0-9]+', '-', suite).strip('-')}.json"


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ManifestError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _from_record(cls, record: Any, where: str):
    """A dataclass from a JSON object: known keys to fields, the rest to ``extra``."""
    record = _mapping(record, where)
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in record.items() if k in names}
    return cls(**known, extra={k: v for k, v in record.items() if k not in names})


def _as_record(obj, drop_none: bool = False) -> dict[str, Any]:
    """The fields (those set, with ``drop_none``), then the kept unknown keys."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "extra"}
    return {**{k: v for k, v in out.items() if v is not None or not drop_none}, **obj.extra}


@dataclass
class ManifestModel:
    """Which model produced the run: its results name, where it was loaded from, and its identity."""

    name: str | None = None
    path: str | None = None
    revision: str | None = None
    content_digest: str | None = None
    hub_revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskEntry:
    """One task's line in the manifest: finished (score, metric, timings, evidence) or failed (error)."""

    status: str = "finished"
    wall_s: float | None = None
    main_score: float | None = None
    main_metric: str | None = None
    readability: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    encode_stats: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunManifest:
    """What produced the results of a run folder (a summary: the task records decide what is finished)."""

    benchmark: str | None = None
    model: ManifestModel = field(default_factory=ManifestModel)
    inputs: dict[str, Any] | None = None  # record.inputs.RunInputs.as_record()
    created: str | None = None
    updated: str | None = None
    versions: dict[str, Any] | None = None
    explicit_options: dict[str, Any] | None = None
    preset: dict[str, Any] | None = None
    instructions: dict[str, Any] | None = None
    data_dir: str | None = None
    backend: str | None = None
    device: str | None = None
    dtype: str | None = None
    resolved_options: dict[str, Any] | None = None
    data_parallel: dict[str, Any] | None = None
    encode_stats: dict[str, Any] | None = None
    endpoint: dict[str, Any] | None = None
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Any) -> RunManifest:
        """Raises ManifestError for JSON that is not a manifest's shape."""
        record = _mapping(record, "the manifest")
        manifest = _from_record(cls, record, "the manifest")
        manifest.model = _from_record(ManifestModel, record.get("model"), "the manifest's model")
        tasks = _mapping(record.get("tasks"), "the manifest's tasks")
        manifest.tasks = {name: _from_record(TaskEntry, entry, f"task {name!r}") for name, entry in tasks.items()}
        return manifest

    def as_record(self) -> dict[str, Any]:
        out = _as_record(self)
        out["model"] = _as_record(self.model)
        out["tasks"] = {name: _as_record(entry, drop_none=True) for name, entry in self.tasks.items()}
        return out

    @classmethod
    def read(cls, path: Path) -> RunManifest | None:
        """The manifest at ``path``, or None when it is absent or not a manifest (a reader never repairs files)."""
        try:
            return cls.from_record(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError):  # ManifestError is a ValueError, as are bad JSON and bad UTF-8
            return None
