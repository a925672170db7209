"""Admission to an output folder: the one read of what a folder holds for a request, and the claim on it.

:func:`examine` (read only) says where the results go, each task's verdict and what conflicts with the request;
the resume check asks it without a lock and the runner under the folder lock, so both decide by the same rule.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from qzhou_eval.errors import DistributedError, InvalidOptionError, OutputDirConflict, QZhouEvalError
from qzhou_eval.integrity.outputs import check_folder_target
from qzhou_eval.record.evidence_files import EVIDENCE_DIRNAME
from qzhou_eval.record.provenance import STATE_DIRNAME, RecordStore, Reuse, Verdict
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.config import CACHE_DIRNAME, RunConfig, request_manifest
from qzhou_eval.runs.folder_lock import OutputFolderLock, check_state_paths
from qzhou_eval.runs.results_io import remove_stale_temp_files
from qzhou_eval.runs.task_data import TaskData

if TYPE_CHECKING:
    from qzhou_eval.encoder.data_parallel import DataParallel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderState:
    """What ``output_dir`` holds for one request: where its results go, its records, each task's verdict, and
    every file made with other inputs (``conflicts``: where -> why)."""

    output_dir: Path
    results_dir: Path
    store: RecordStore
    verdicts: dict[str, Verdict]
    conflicts: dict[str, str]

    def finished(self) -> list[str]:
        return sorted(n for n, v in self.verdicts.items() if v.reuse is Reuse.FINISHED)


def examine(output_dir: Path, suite: str, spec: RunSpec, fingerprints: dict[str, str], evidence: bool) -> FolderState:
    """Read only: the state of ``output_dir`` for ``spec``'s tasks over data of ``fingerprints``."""
    inputs = spec.inputs
    results_dir = spec.results_dir(output_dir)
    store = RecordStore(output_dir, spec.model_name, spec.revision)
    conflicts = {p.name: why for p, why in manifests.check_output_dir(output_dir, inputs, suite).items()}
    conflicts.update({f"{name}.json": why for name, why in store.conflicting(inputs).items()})
    prefixes = {name: spec.prefixes_sha256(name) for name in fingerprints}
    verdicts = store.verdicts(inputs, prefixes, fingerprints, results_dir, evidence)
    conflicts.update({f"{n}.json": v.detail for n, v in verdicts.items() if v.reuse is Reuse.CONFLICT})
    return FolderState(output_dir, results_dir, store, verdicts, conflicts)


def _check_writable(output_dir: Path) -> None:
    """A probe file with a unique name (concurrent runs never trip over each other's probe)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".qzhou-write-probe-", dir=output_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidOptionError(
            f"--output_dir {str(output_dir)!r} is not writable ({exc}); choose another folder"
        ) from exc


def _set_aside_previous(output_dir: Path) -> Path:
    """--overwrite over other inputs: keep the old results and their records, moved out of the way."""
    target = output_dir / f"replaced-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    target.mkdir()
    for item in output_dir.iterdir():
        if item.name not in (CACHE_DIRNAME, STATE_DIRNAME, target.name) and not item.name.startswith("replaced-"):
            shutil.move(str(item), target / item.name)
    for kept in ("records", EVIDENCE_DIRNAME):
        folder = output_dir / STATE_DIRNAME / kept
        if folder.is_dir():
            (target / STATE_DIRNAME).mkdir(exist_ok=True)
            shutil.move(str(folder), target / STATE_DIRNAME / kept)
    logger.warning("previous results of other inputs moved to %s", target)
    return target


def _conflict_error(output_dir: Path, conflicts: dict[str, str]) -> OutputDirConflict:
    details = "; ".join(f"{where}: {why}" for where, why in list(conflicts.items())[:4])
    return OutputDirConflict(
        f"{output_dir} holds results made with other inputs ({details}); pass --overwrite (old results are moved "
        "to a replaced-<time>/ folder, not deleted) or choose another --output_dir"
    )


def admit_as_writer(
    config: RunConfig,
    tasks: list,
    data: dict[str, TaskData],
    spec: RunSpec,
    stack: ExitStack,
    data_parallel: DataParallel | None,
) -> tuple[OutputFolderLock, list[str]]:
    """Check and claim the output folder; tell the other ranks (if any) the finished tasks, or why none run."""
    try:
        output_dir = Path(config.output_dir)
        check_folder_target(output_dir, "--output_dir")
        store = RecordStore(output_dir, spec.model_name, spec.revision)
        check_state_paths(
            output_dir, config.suite, spec.results_dir(output_dir), store, [t.metadata.name for t in tasks]
        )
        _check_writable(output_dir)
        lock = stack.enter_context(OutputFolderLock(output_dir, spec.inputs, f"qzhou-eval run ({config.suite})"))
        done = _admit(config, tasks, data, spec, lock)
    except QZhouEvalError as exc:
        if data_parallel is not None:
            data_parallel.broadcast_object(("refused", f"{type(exc).__name__}: {exc}"))
        raise
    if data_parallel is not None:
        data_parallel.broadcast_object(("admitted", done))
    return lock, done


def admitted_by_writer(data_parallel: DataParallel) -> list[str]:
    verdict, detail = data_parallel.broadcast_object()
    if verdict == "refused":
        raise DistributedError(f"rank 0 refused the run, so this rank stops too: {detail}")
    return detail


def _admit(
    config: RunConfig, tasks: list, data: dict[str, TaskData], spec: RunSpec, lock: OutputFolderLock
) -> list[str]:
    """Under the folder lock: refuse results of other inputs, claim the manifest; return the finished tasks."""
    output_dir = Path(config.output_dir)
    fingerprints = {t.metadata.name: data[t.metadata.name].fingerprint for t in tasks}
    with lock.exclusive():  # check and claim the folder in one step: a concurrent run sees our manifest
        state = examine(output_dir, config.suite, spec, fingerprints, config.predictions)
        if state.conflicts and not config.overwrite:
            raise _conflict_error(output_dir, state.conflicts)
        if state.conflicts:
            _set_aside_previous(output_dir)
            state = examine(output_dir, config.suite, spec, fingerprints, config.predictions)
        store = state.store
        for folder in (state.results_dir, output_dir, store.folder, output_dir / STATE_DIRNAME, store.evidence_folder):
            remove_stale_temp_files(folder)
        manifests.merge_and_save(manifests.manifest_path(output_dir, config.suite), request_manifest(config, spec), {})
    verdicts = state.verdicts
    done = [] if config.overwrite else state.finished()
    for name, verdict in sorted(verdicts.items()):
        if (
            verdict.reuse in (Reuse.UNRECORDED, Reuse.DATA_CHANGED, Reuse.RESULT_CHANGED, Reuse.NO_EVIDENCE)
            and not config.overwrite
        ):
            logger.warning("%s: %s; running it again", name, verdict.detail)
    if done:
        logger.info("%d task(s) already finished with these inputs, skipped: %s", len(done), done)
    return done
