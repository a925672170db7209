"""A result's per-sample units, read back only when its record, result file and units file all verify."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qzhou_eval.record.evidence_files import evidence_intact
from qzhou_eval.record.provenance import is_recorded_file, read_record, store_of
from qzhou_eval.significance.units import TaskUnits


@dataclass(frozen=True)
class RecordedUnits:
    """A result's units, read only after its record, result file and units file all verified."""

    units: TaskUnits
    data_fingerprint: str


def recorded_units(result_file: Path) -> RecordedUnits | str:
    """The units kept beside ``result_file`` (``<output_dir>/<org__model>/<revision>/<Task>.json``), or why none."""
    store = store_of(result_file)
    record = read_record(store.path(result_file.stem), legacy_ok=True)
    if record is None:
        return "no per-sample data (a leaderboard or other tool's result, or no record of the run)"
    if not is_recorded_file(record, result_file):
        return "its result file is not the one recorded"
    if record.evidence is None:
        return f"no per-sample data: {evidence_intact(None, store.evidence_files(result_file.stem))}"
    if "units_sha256" not in record.evidence:
        return f"no per-sample units: {record.evidence.get('units_note', 'none were kept')}"
    units_file = store.evidence_files(result_file.stem).units
    try:  # read once, checked and parsed from the same bytes (the predictions are not needed here)
        data = units_file.read_bytes()
    except OSError:
        return f"no per-sample data: {units_file.name} is missing or unreadable"
    if hashlib.sha256(data).hexdigest() != record.evidence["units_sha256"]:
        return f"no per-sample data: {units_file.name} is not the file its record names"
    try:
        units = TaskUnits.from_bytes(data)
    except ValueError as exc:
        return f"per-sample units unreadable ({exc})"
    return RecordedUnits(units, record.data_fingerprint)
