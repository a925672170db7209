"""Atomic writes of mteb result files: a kill never leaves a half-written JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".qzhou-tmp"


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files a killed writer left behind (never a finished result)."""
    removed = 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}") if folder.is_dir() else []:
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_task_result(task_result, path: Path) -> None:
    """Save an mteb ``TaskResult`` in mteb's own JSON form, atomically."""
    atomic_write_json(path, task_result.to_dict())


def read_task_result(path: Path):
    """Load a result file with mteb's own class (None when absent or unreadable)."""
    from mteb.results import TaskResult

    if not path.is_file():
        return None
    try:
        return TaskResult.from_disk(path)
    except Exception:
        return None
