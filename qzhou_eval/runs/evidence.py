"""Per-sample evidence of one evaluation, collected from mteb's predictions and written before the task's record.

Where it lies and how a reader checks it against its record: :mod:`qzhou_eval.record.evidence_files`.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval._atomic import atomic_write_bytes
from qzhou_eval.integrity.content import file_sha256
from qzhou_eval.record.evidence_files import EvidenceFiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """What one evaluation left behind, ready to write: compressed predictions, units (or why none)."""

    predictions: bytes
    units: bytes | None
    note: str  # "" when units exist; else why not (shown by compare for this task)


def collect_evidence(task, task_result, prediction_file: Path) -> Evidence | None:
    """Read mteb's prediction file and build the task's units while its data is still loaded.

    None when mteb wrote no prediction file (a task type that saves none).
    """
    from qzhou_eval.errors import UnsupportedMetric
    from qzhou_eval.significance.from_mteb import task_units

    if not prediction_file.is_file():
        logger.warning("%s: mteb saved no predictions; its comparisons will use point deltas", task.metadata.name)
        return None
    raw = prediction_file.read_bytes()
    predictions: dict[str, Any] = json.loads(raw)
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    try:
        units = task_units(task, task_result, predictions)
    except UnsupportedMetric as exc:
        return Evidence(packed, None, str(exc))
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # never a failed task: the score itself is mteb's
        logger.warning(
            "%s: per-sample units were not kept (%s: %s); its comparisons will use point deltas",
            task.metadata.name,
            type(exc).__name__,
            exc,
        )
        return Evidence(packed, None, f"units did not rebuild mteb's score ({type(exc).__name__}: {exc})")
    return Evidence(packed, units.to_bytes(), "")


def write_evidence(evidence: Evidence, files: EvidenceFiles) -> dict[str, Any]:
    """Write the files atomically; return what the task's record keeps of them (digests, note)."""
    atomic_write_bytes(files.predictions, evidence.predictions)
    record: dict[str, Any] = {"predictions_sha256": file_sha256(files.predictions)}
    if evidence.units is not None:
        atomic_write_bytes(files.units, evidence.units)
        record["units_sha256"] = file_sha256(files.units)
    else:
        files.units.unlink(missing_ok=True)
        record["units_note"] = evidence.note
    return record
