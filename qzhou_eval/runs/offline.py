"""Point mteb tasks at a local mirror of their datasets (layout: ../shared/mteb-data/README.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qzhou_eval.errors import DataDirError

EXPECTED = "<data_dir>/<TaskName>/README.md (YAML 'configs:' listing data_files) and the split files it lists"


def hub_offline() -> None:
    """Forbid requests to the hub from this process, also when huggingface_hub is already imported (a command
    that needs no datasets does not pay for importing them)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True


def go_offline() -> None:
    """Forbid network access for the hub and datasets, also when they are already imported."""
    hub_offline()
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets.config

    datasets.config.HF_HUB_OFFLINE = True
    if hasattr(datasets.config, "HF_DATASETS_OFFLINE"):
        datasets.config.HF_DATASETS_OFFLINE = True


def _check_folder(folder: Path) -> str | None:
    """Why ``folder`` is not a usable task folder, or None."""
    if not folder.is_dir():
        return "missing"
    readme = folder / "README.md"
    if not readme.is_file():
        return "no README.md"
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---") or "configs:" not in text:
        return "README.md has no YAML 'configs:' header"
    if not any(p.suffix in (".gz", ".jsonl", ".json", ".parquet", ".csv") for p in folder.rglob("*")):
        return "no data files"
    return None


def attach_data_dir(tasks: Sequence, data_dir: str | Path) -> None:
    """Check every task has a usable folder, then point each task's dataset path at it.

    Raises:
        DataDirError: naming every missing or malformed task folder and the expected files.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataDirError(f"--data_dir {str(root)!r} does not exist; expected {EXPECTED}")
    problems = {t.metadata.name: _check_folder(root / t.metadata.name) for t in tasks}
    problems = {name: why for name, why in problems.items() if why}
    if problems:
        listing = ", ".join(f"{name} ({why})" for name, why in problems.items())
        raise DataDirError(f"{len(problems)} task(s) are not usable in {root}: {listing}; expected {EXPECTED}")
    for task in tasks:
        # The task's own copy of its metadata: mteb shares one TaskMetadata object between every instance of a
        # task class, so changing it in place would point every later get_task() in the process (a model card's
        # dataset id, another run) at this folder. Keep 'revision': mteb writes it into result metadata.
        dataset = {**task.metadata.dataset, "path": str((root / task.metadata.name).resolve())}
        task.metadata = task.metadata.model_copy(update={"dataset": dataset})
