"""Mirror a suite's datasets into the offline layout that --data_dir reads.

Each task folder is an exact snapshot of the task's hub dataset repo at the revision mteb pins, so
``datasets`` reads it through the same README ``configs:`` it reads on the hub. Run this on a machine
that reaches the hub; copy the folder to machines that do not.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from qzhou_eval._atomic import atomic_write_json
from qzhou_eval.errors import SnapshotError
from qzhou_eval.runs.offline import _check_folder

logger = logging.getLogger(__name__)

MARKER = ".qzhou-mirror.json"

# fetch(repo_id, revision, destination_folder) -> None
Fetcher = Callable[[str, str | None, Path], None]


def hub_fetcher(repo_id: str, revision: str | None, destination: Path) -> None:
    """Download a dataset repo snapshot from the Hugging Face hub."""
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision, local_dir=str(destination))


def mirror_tasks(
    tasks: Sequence, out: str | Path, fetch: Fetcher = hub_fetcher, overwrite: bool = False
) -> dict[str, str]:
    """Write every task's dataset under ``out/<TaskName>/``; returns {task: 'mirrored' | 'present'}.

    A task is fetched into ``<TaskName>.partial`` and renamed when complete, so an interrupted mirror
    never leaves a folder that looks finished; a finished one is kept unless ``overwrite``.

    Raises:
        DataDirError-like ValueError: a fetched folder that ``--data_dir`` could not use.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    for task in tqdm(tasks, desc="Mirroring", unit="task", disable=not logger.isEnabledFor(logging.INFO)):
        name = task.metadata.name
        final = root / name
        dataset = task.metadata.dataset
        if (final / MARKER).is_file() and not overwrite:
            status[name] = "present"
            continue
        partial = root / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        fetch(dataset["path"], dataset.get("revision"), partial)
        problem = _check_folder(partial)
        if problem:
            raise SnapshotError(
                f"{name}: the snapshot of {dataset['path']} is not usable offline ({problem}); "
                "its repo may need a README 'configs:' header"
            )
        atomic_write_json(
            partial / MARKER, {"task": name, "repo": dataset["path"], "revision": dataset.get("revision")}
        )
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        status[name] = "mirrored"
        logger.info("mirrored %s from %s@%s", name, dataset["path"], dataset.get("revision"))
    return status


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
