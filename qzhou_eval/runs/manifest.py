"""Run manifests: what produced the results in an output folder, and whether a new run may join it."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.runs.results_io import atomic_write_json

# Fields a continued run keeps from the manifest it continues (a rerun may load no model at all).
CARRIED_OVER = ("tasks", "created", "resolved_options", "device", "dtype", "cache_hit_rate")

_PACKAGES = ("torch", "transformers", "mteb", "sentence-transformers", "datasets", "qzhou-eval")


class OutputDirConflict(QZhouEvalError):
    """An output folder that holds results of another model or other options."""


def manifest_path(output_dir: Path, benchmark: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", benchmark).strip("-")
    return output_dir / f"qzhou-run-{slug}.json"


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


def compatibility_key(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must match for two runs to share an output folder."""
    return {"model": manifest.get("model"), "options": manifest.get("options")}


def check_output_dir(output_dir: Path, new: dict[str, Any], benchmark: str) -> list[Path]:
    """Return manifests that conflict with ``new`` (other model/options, or other instructions for this suite)."""
    conflicts = []
    for path in sorted(output_dir.glob("qzhou-run-*.json")):
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            conflicts.append(path)
            continue
        same_suite = path == manifest_path(output_dir, benchmark)
        if compatibility_key(old) != compatibility_key(new) or (
            same_suite and old.get("instructions_sha256") != new.get("instructions_sha256")
        ):
            conflicts.append(path)
    return conflicts


def describe_conflict(path: Path, new: dict[str, Any]) -> str:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return f"{path.name} is unreadable"
    diffs = []
    for key in ("model", "options"):
        for field in sorted(set(old.get(key) or {}) | set(new.get(key) or {})):
            a, b = (old.get(key) or {}).get(field), (new.get(key) or {}).get(field)
            if a != b:
                diffs.append(f"{key}.{field}: {a!r} -> {b!r}")
    if old.get("instructions_sha256") != new.get("instructions_sha256"):
        diffs.append("instructions file differs")
    return f"{path.name}: " + "; ".join(diffs[:6])


def new_manifest(**fields: Any) -> dict[str, Any]:
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(), **fields, "tasks": {}}


def save(path: Path, manifest: dict[str, Any]) -> None:
    manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path, manifest)


def load(path: Path) -> dict[str, Any] | None:
    """A manifest's content, or None when absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
