"""What produced a result, and whether it may be reused: the one owner of that decision.

A run's :class:`RunInputs` (model identity, resolved embedding options, instruction set) plus a
task's data fingerprint make the task's :class:`TaskRecord`, written after its result file to
``<output_dir>/.qzhou/records/<org__model>/<revision>/<Task>.json`` (outside the folders mteb reads).
A result counts as finished only when its record's inputs equal the request's, the data fingerprint
equals the data's now, and the result file still has the digest the record names. Options compare
by resolved value, so spelling out a default is not a change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from qzhou_eval._atomic import atomic_write_json
from qzhou_eval.integrity.content import file_sha256, hash_bytes
from qzhou_eval.record.evidence_files import EVIDENCE_DIRNAME, EvidenceFiles, evidence_intact
from qzhou_eval.record.inputs import RunInputs
from qzhou_eval.record.result_files import main_score_of
from qzhou_eval.results.layout import RESULTS_DIRNAME, model_folder, model_name_of

STATE_DIRNAME = ".qzhou"


@dataclass(frozen=True)
class TaskRecord:
    """What produced one task's result file."""

    task: str
    inputs: RunInputs
    prefixes_sha256: str  # this task's own query/document prefixes (a suite's other tasks do not matter)
    data_fingerprint: str
    result_sha256: str
    main_score: float
    finished: str
    evidence: dict[str, Any] | None = None  # runs/evidence.py: digests of the predictions and units files

    def as_record(self) -> dict[str, Any]:
        body = {
            "task": self.task,
            "inputs": self.inputs.as_record(),
            "prefixes_sha256": self.prefixes_sha256,
            "data_fingerprint": self.data_fingerprint,
            "result_sha256": self.result_sha256,
            "main_score": self.main_score,
            "finished": self.finished,
        }
        if self.evidence is not None:
            body["evidence"] = self.evidence
        return {**body, "record_check": record_check(body)}


def record_check(body: dict[str, Any]) -> str:
    """A record's checksum over its own fields: a record edited by hand (or damaged) is never believed."""
    return hash_bytes(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode())


class Reuse(Enum):
    """Verdict on a task's existing result for the current request."""

    FINISHED = "finished"  # reuse it
    ABSENT = "absent"  # nothing there: run it
    UNRECORDED = "unrecorded"  # a result with no record (killed before its record, or another tool): re-run
    DATA_CHANGED = "data changed"  # the same request over other data: re-run
    RESULT_CHANGED = "result changed"  # the file is not the one recorded (edited or damaged): re-run
    NO_EVIDENCE = "no evidence"  # per-sample evidence is asked for and missing or not the recorded files: re-run
    CONFLICT = "conflict"  # made with other inputs: refuse unless --overwrite


@dataclass(frozen=True)
class Verdict:
    reuse: Reuse
    detail: str = ""


def is_recorded_file(record: TaskRecord, result_file: Path) -> bool:
    """``result_file`` is, byte for byte, the file ``record`` names (False when it cannot be read)."""
    try:
        return file_sha256(result_file) == record.result_sha256
    except OSError:
        return False


def read_record(path: Path, legacy_ok: bool = False) -> TaskRecord | None:
    """A record file, or None when absent, unreadable or not matching its own checksum.

    ``legacy_ok``: a record written before records carried a checksum is read too (for *showing* a result,
    whose own hash it still verifies); a run never reuses such a result, it runs the task again.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        check = data.pop("record_check", None)
        if (check is not None or not legacy_ok) and check != record_check(data):
            return None
        return TaskRecord(
            data["task"],
            RunInputs.from_record(data["inputs"]),
            data["prefixes_sha256"],
            data["data_fingerprint"],
            data["result_sha256"],
            float(data["main_score"]),
            data["finished"],
            data.get("evidence"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class RecordStore:
    """The task records of one model revision in one output folder."""

    def __init__(self, output_dir: Path, model_name: str, revision: str) -> None:
        folder = model_folder(model_name)
        self.folder = Path(output_dir) / STATE_DIRNAME / "records" / folder / revision
        self.evidence_folder = Path(output_dir) / STATE_DIRNAME / EVIDENCE_DIRNAME / folder / revision

    def path(self, task: str) -> Path:
        return self.folder / f"{task}.json"

    def evidence_files(self, task: str) -> EvidenceFiles:
        return EvidenceFiles.in_folder(self.evidence_folder, task)

    def read(self, task: str) -> TaskRecord | None:
        """The record, or None when absent, unreadable or not matching its own checksum (then the task runs again)."""
        return read_record(self.path(task))

    def verified_score(self, task: str, result_file: Path) -> float | None:
        """The main score read from ``result_file`` itself, only when the file is the one its record names."""
        record = self.read(task)
        if record is None or not is_recorded_file(record, result_file):
            return None
        return main_score_of(result_file)

    def write(
        self,
        task: str,
        inputs: RunInputs,
        prefixes: str,
        data_fingerprint: str,
        result_file: Path,
        main_score: float,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        """Written after the result and evidence files: a kill in between leaves a result without record, re-run."""
        record = TaskRecord(
            task,
            inputs,
            prefixes,
            data_fingerprint,
            file_sha256(result_file),
            main_score,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            evidence,
        )
        atomic_write_json(self.path(task), record.as_record())

    def verdict(
        self,
        task: str,
        inputs: RunInputs,
        prefixes: str,
        data_fingerprint: str,
        result_file: Path,
        evidence: bool = False,
    ) -> Verdict:
        """May ``result_file`` stand for ``task`` under ``inputs`` and ``prefixes``, over data ``data_fingerprint``?

        ``evidence``: the run keeps per-sample evidence, so a result without its intact evidence runs again.
        """
        record = self.read(task)
        if not result_file.is_file():
            return Verdict(Reuse.ABSENT)
        if record is None:
            why = (
                "has no record of what produced it"
                if not self.path(task).exists()
                else ("has a record that is unreadable or does not match its own checksum (edited or damaged)")
            )
            return Verdict(Reuse.UNRECORDED, f"{result_file.name} {why}")
        diffs = record.inputs.differences(inputs, instructions=False)
        if record.prefixes_sha256 != prefixes:
            diffs.append(f"{task}'s instruction prefixes differ")
        if diffs:
            return Verdict(Reuse.CONFLICT, "; ".join(diffs))
        if record.data_fingerprint != data_fingerprint:
            return Verdict(Reuse.DATA_CHANGED, "its data changed since the recorded result")
        if not is_recorded_file(record, result_file):
            return Verdict(Reuse.RESULT_CHANGED, f"{result_file.name} is not the file its record names")
        if evidence and (why := evidence_intact(record.evidence, self.evidence_files(task))) is not None:
            return Verdict(Reuse.NO_EVIDENCE, f"{result_file.name} {why}" if record.evidence is None else why)
        return Verdict(Reuse.FINISHED)

    def verdicts(
        self,
        inputs: RunInputs,
        prefixes: dict[str, str],
        fingerprints: dict[str, str],
        results_dir: Path,
        evidence: bool = False,
    ) -> dict[str, Verdict]:
        """:meth:`verdict` for every task in ``prefixes`` (results in mteb's ``<results_dir>/<Task>.json``)."""
        return {
            name: self.verdict(name, inputs, prefix, fingerprints[name], results_dir / f"{name}.json", evidence)
            for name, prefix in prefixes.items()
        }

    def conflicting(self, inputs: RunInputs) -> dict[str, str]:
        """Every recorded task of this revision made with other inputs: {task: differences}."""
        out = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            record = self.read(path.stem)
            diffs = record.inputs.differences(inputs, instructions=False) if record is not None else []
            if diffs:
                out[path.stem] = "; ".join(diffs)
        return out


def run_folder_of(result_file: Path) -> Path:
    """The run's output folder of a result at ``<output_dir>/results/<org__model>/<revision>/<Task>.json``
    (mteb's cache layout), or at ``<output_dir>/<org__model>/<revision>/`` (runs made before it): the one
    that holds the run's state folder, else the folder above the model's."""
    above_model = result_file.parent.parent.parent
    if (above_model / STATE_DIRNAME).is_dir():
        return above_model
    if above_model.name == RESULTS_DIRNAME and (above_model.parent / STATE_DIRNAME).is_dir():
        return above_model.parent
    return above_model


def store_of(result_file: Path) -> RecordStore:
    """The record store of a result file in a run folder (either layout: :func:`run_folder_of`)."""
    revision_dir = result_file.parent
    model_dir = revision_dir.parent
    return RecordStore(run_folder_of(result_file), model_name_of(model_dir.name) or model_dir.name, revision_dir.name)


def unverified_reason(result_file: Path) -> str | None:
    """Why a result file in a qzhou-eval run folder may not be shown, or None when it may.

    ``result_file`` sits at ``<output_dir>/results/<org__model>/<revision>/<Task>.json`` (or one level up, in
    runs made before mteb's layout was adopted). Where that output folder
    holds records for the model (it is a qzhou-eval run), the file must be the exact one its record
    names; folders written by other tools (the public results repository, ``submit``'s copy) carry no
    records and are read as they are.
    """
    store = store_of(result_file)
    if not store.folder.parent.is_dir():
        return None
    record_file = store.path(result_file.stem)
    if not record_file.exists():
        return (
            "has no record of what produced it (a run stopped before recording it, or the file was put there by "
            "hand); rerun the same command to finish the task"
        )
    record = read_record(record_file, legacy_ok=True)
    if record is None:
        return f"its record {record_file} is unreadable or was edited; rerun the same command to re-run the task"
    if not is_recorded_file(record, result_file):
        return (
            "is not the file its record names (edited, damaged or unreadable since the run); rerun the same "
            "command to re-run the task"
        )
    return None
