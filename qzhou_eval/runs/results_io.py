"""Atomic writes of mteb result files: a kill never leaves a half-written JSON."""

from __future__ import annotations

from pathlib import Path

from qzhou_eval._atomic import TMP_SUFFIX, atomic_write_json, atomic_write_text, owner_is_gone

__all__ = [
    "atomic_write_json",
    "atomic_write_text",
    "read_task_result",
    "remove_stale_temp_files",
    "write_task_result",
]


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files and folders whose writer is dead (never a finished result, never a live run's temp file)."""
    import shutil

    removed = 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}") if folder.is_dir() else []:
        if owner_is_gone(tmp):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed += 1
    return removed


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
