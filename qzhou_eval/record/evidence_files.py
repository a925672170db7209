"""Where a result's per-sample evidence lies and whether it is the evidence its record names (model-free).

Layout (beside the records, outside the folders mteb and the results repository read)::

    <output_dir>/.qzhou/evidence/<org__model>/<revision>/<Task>.predictions.json.gz   mteb's predictions, gzip
    <output_dir>/.qzhou/evidence/<org__model>/<revision>/<Task>.units.json.gz         TaskUnits (significance/)

Both files are written before the task's record, and the record names their digests, so evidence is
reused, shown or compared only while it is the exact evidence of the result it sits beside. Units
exist only when they rebuild mteb's main score; otherwise the record says why there are none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval.integrity.content import file_sha256

EVIDENCE_DIRNAME = "evidence"


@dataclass(frozen=True)
class EvidenceFiles:
    predictions: Path
    units: Path

    @classmethod
    def in_folder(cls, folder: Path, task: str) -> EvidenceFiles:
        return cls(folder / f"{task}.predictions.json.gz", folder / f"{task}.units.json.gz")


def evidence_intact(record: dict[str, Any] | None, files: EvidenceFiles) -> str | None:
    """Why the evidence named by a record is not the evidence on disk, or None when it is."""
    if record is None:
        return "has no per-sample predictions (run with --no_predictions, or before they were kept)"
    wanted = [(files.predictions, record.get("predictions_sha256"))]
    if "units_sha256" in record:
        wanted.append((files.units, record["units_sha256"]))
    for path, digest in wanted:
        try:
            if file_sha256(path) != digest:
                return f"{path.name} is not the file its record names"
        except OSError:
            return f"{path.name} is missing or unreadable"
    return None
