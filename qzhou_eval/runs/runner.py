"""run_suite: evaluate one checkpoint on (part of) a benchmark, or on named tasks, through mteb 2.x, resumably.

Order of work, so bad input fails before any encoding: select and shard tasks, check and fingerprint
the offline data (every split file opened), resolve the request (preset, options, instructions),
check the output folder (writable; no live run with other inputs; no results of other inputs), decide
per task from its record whether its result stands, and only then load the model. A task that raises
is recorded (manifest + traceback file) and the others still run, unless ``fail_fast``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
import traceback
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from qzhou_eval._atomic import TMP_SUFFIX, temp_prefix
from qzhou_eval._ranks import launched_by_torchrun
from qzhou_eval.api import build_encoder
from qzhou_eval.encoder.mteb_model import QZhouMtebModel
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import (
    DistributedError,
    EmbeddingError,
    EndpointError,
    EndpointMismatch,
    InvalidOptionError,
    OutputDirConflict,
    QZhouEvalError,
)
from qzhou_eval.integrity.exhaustion import is_exhaustion
from qzhou_eval.integrity.outputs import check_folder_target
from qzhou_eval.modeling.loading import check_device, resolve_device
from qzhou_eval.record.evidence_files import EVIDENCE_DIRNAME
from qzhou_eval.record.provenance import STATE_DIRNAME, RecordStore, Reuse
from qzhou_eval.resolution.resolve import resolve
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.results.layout import results_dir_for
from qzhou_eval.run_manifest import RunManifest, TaskEntry
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.column_lists import columns_as_lists
from qzhou_eval.runs.config import CACHE_DIRNAME, RunConfig, RunSummary, TaskFailure, request_manifest
from qzhou_eval.runs.evidence import Evidence, collect_evidence, write_evidence
from qzhou_eval.runs.folder_lock import OutputFolderLock, check_state_paths
from qzhou_eval.runs.offline import attach_data_dir, go_offline
from qzhou_eval.runs.results_io import (
    atomic_write_json,
    atomic_write_text,
    remove_stale_temp_files,
    write_task_result,
)
from qzhou_eval.runs.suites import run_tasks, shard
from qzhou_eval.runs.task_data import TaskData, check_local_data, hub_data, prepared_in_content_cache

if TYPE_CHECKING:
    from qzhou_eval.encoder.data_parallel import DataParallel

logger = logging.getLogger(__name__)


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


def run_suite(config: RunConfig, spec: RunSpec | None = None) -> RunSummary:
    """Evaluate, write mteb-layout results atomically, and return the per-task main scores and failures.

    ``spec``: ``config`` already resolved (by the resume check), so a run resolves once.

    Raises:
        InvalidOptionError, DataDirError, InstructionError, OutputDirConflict, OutputDirBusy: before any encoding.
    """
    tasks = shard(run_tasks(config.benchmark, config.tasks, config.exclude_tasks, config.task_types), config.shard)
    check_device(config.device)
    if config.data_dir is not None:
        go_offline()
        attach_data_dir(tasks, config.data_dir)
        data = check_local_data(tasks, config.data_dir)
    else:
        data = hub_data(tasks)
    names = [t.metadata.name for t in tasks]
    if spec is None or set(spec.tasks) != set(names):  # the resume check's resolution serves when it saw these tasks
        spec = resolve(config.request(names))
    data_parallel = join_ranks(config)
    try:
        with ExitStack() as stack:
            if data_parallel is None or data_parallel.is_writer:
                lock, done = _admit_as_writer(config, tasks, data, spec, stack, data_parallel)
            else:
                lock, done = None, _admitted_by_writer(data_parallel)
            return _run_admitted(config, tasks, data, spec, lock, done, data_parallel)
    finally:
        if data_parallel is not None:
            data_parallel.close()


def join_ranks(config: RunConfig) -> DataParallel | None:
    """Under torchrun: join the process group (this rank's GPU, or gloo on CPU); else None."""
    if not launched_by_torchrun():
        return None
    from qzhou_eval.encoder.data_parallel import DataParallel, rank_device

    return DataParallel(resolve_device(rank_device(config.device)))


def _admit_as_writer(
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
        results_dir = results_dir_for(output_dir, spec.model_name, spec.revision)
        store = RecordStore(output_dir, spec.model_name, spec.revision)
        check_state_paths(output_dir, config.suite, results_dir, store, [t.metadata.name for t in tasks])
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


def _admitted_by_writer(data_parallel: DataParallel) -> list[str]:
    verdict, detail = data_parallel.broadcast_object()
    if verdict == "refused":
        raise DistributedError(f"rank 0 refused the run, so this rank stops too: {detail}")
    return detail


def _admit(
    config: RunConfig, tasks: list, data: dict[str, TaskData], spec: RunSpec, lock: OutputFolderLock
) -> list[str]:
    """Under the folder lock: refuse results of other inputs, claim the manifest; return the finished tasks."""
    output_dir = Path(config.output_dir)
    inputs = spec.inputs
    results_dir = results_dir_for(output_dir, spec.model_name, inputs.revision)
    store = RecordStore(output_dir, spec.model_name, inputs.revision)
    prefixes = _prefixes(spec, tasks)
    fingerprints = {name: source.fingerprint for name, source in data.items()}
    with lock.exclusive():  # check and claim the folder in one step: a concurrent run sees our manifest
        conflicts = {p.name: why for p, why in manifests.check_output_dir(output_dir, inputs, config.suite).items()}
        conflicts.update({f"{name}.json": why for name, why in store.conflicting(inputs).items()})
        verdicts = store.verdicts(inputs, prefixes, fingerprints, results_dir, config.predictions)
        conflicts.update({f"{n}.json": v.detail for n, v in verdicts.items() if v.reuse is Reuse.CONFLICT})
        if conflicts and not config.overwrite:
            raise _conflict_error(output_dir, conflicts)
        if conflicts:
            _set_aside_previous(output_dir)
            verdicts = store.verdicts(inputs, prefixes, fingerprints, results_dir, config.predictions)
        for folder in (results_dir, output_dir, store.folder, output_dir / STATE_DIRNAME, store.evidence_folder):
            remove_stale_temp_files(folder)
        manifests.merge_and_save(manifests.manifest_path(output_dir, config.suite), request_manifest(config, spec), {})
    done = sorted(n for n, v in verdicts.items() if v.reuse is Reuse.FINISHED and not config.overwrite)
    for name, verdict in sorted(verdicts.items()):
        if (
            verdict.reuse in (Reuse.UNRECORDED, Reuse.DATA_CHANGED, Reuse.RESULT_CHANGED, Reuse.NO_EVIDENCE)
            and not config.overwrite
        ):
            logger.warning("%s: %s; running it again", name, verdict.detail)
    if done:
        logger.info("%d task(s) already finished with these inputs, skipped: %s", len(done), done)
    return done


def _prefixes(spec: RunSpec, tasks: list) -> dict[str, str]:
    return {t.metadata.name: spec.prefixes_sha256(t.metadata.name) for t in tasks}


def _run_admitted(
    config: RunConfig,
    tasks: list,
    data: dict[str, TaskData],
    spec: RunSpec,
    lock: OutputFolderLock | None,
    done: list[str],
    data_parallel: DataParallel | None,
) -> RunSummary:
    output_dir = Path(config.output_dir)
    results_dir = results_dir_for(output_dir, spec.model_name, spec.revision)
    store = RecordStore(output_dir, spec.model_name, spec.revision)
    pending = [t for t in tasks if t.metadata.name not in done]
    stats, failed, scores = None, {}, {}
    if pending:
        run = _TaskLoop(
            config,
            spec,
            request_manifest(config, spec),
            manifests.manifest_path(output_dir, config.suite),
            results_dir,
            lock,
            store,
            data,
            _prefixes(spec, tasks),
            data_parallel,
        )
        stats, failed = run.evaluate(pending)
        scores.update(run.scores)
    ran = [t.metadata.name for t in pending if t.metadata.name not in failed]
    for name in done:  # the printed score is read from the result file its record verifies, never from the record
        score = store.verified_score(name, results_dir / f"{name}.json")
        if score is None:
            raise QZhouEvalError(
                f"{results_dir / (name + '.json')} changed while this run was starting; rerun the same command"
            )
        scores[name] = score
    return RunSummary(results_dir, {n: scores[n] for n in [*done, *ran] if n in scores}, ran, done, stats, failed)


class _TaskLoop:
    """Loads the model once and evaluates the pending tasks one by one, recording each outcome.

    Under data parallelism every rank runs this loop (each encode call is split across them) and
    computes the same scores; only the writer (rank 0) writes results, records, manifest and cache.
    """

    def __init__(
        self,
        config: RunConfig,
        spec: RunSpec,
        header: RunManifest,
        manifest_file: Path,
        results_dir: Path,
        lock: OutputFolderLock | None,
        store: RecordStore,
        data: dict[str, TaskData],
        prefixes: dict[str, str],
        data_parallel: DataParallel | None = None,
    ) -> None:
        self.config = config
        self.spec = spec
        self.header = header
        self.manifest_file = manifest_file
        self.results_dir = results_dir
        self.lock = lock
        self.store = store
        self.data = data
        self.prefixes = prefixes
        self.data_parallel = data_parallel
        self.writes = data_parallel is None or data_parallel.is_writer
        self.scores: dict[str, float] = {}

    def evaluate(self, pending: list) -> tuple[EncodeStats, dict[str, TaskFailure]]:
        import mteb

        config, spec = self.config, self.spec
        rank = self.data_parallel.device if self.data_parallel is not None else None
        encoder = build_encoder(spec, None if rank is None else str(rank))
        encoder.data_parallel = self.data_parallel
        logger.info("options for %s:\n  %s", spec.model_name, "\n  ".join(encoder.resolution.describe()))
        if spec.instructions is not None:
            logger.info("instructions: %s", spec.instructions.origin)
        cache = None
        if config.cache_dir and self.writes:
            cache_root = Path(config.output_dir) / CACHE_DIRNAME if config.cache_dir is True else Path(config.cache_dir)
            cache = encoder.attach_cache(cache_root / "embeddings.sqlite")
        model = QZhouMtebModel(
            encoder,
            spec.instructions,
            use_instruction=spec.use_instruction,
            model_name=spec.model_name,
            revision=spec.revision,
            readability_limits=config.readability,
        )
        self.model = model
        if self.writes:
            atomic_write_json(self.results_dir / "model_meta.json", model.mteb_model_meta.to_dict())
        self.header.device, self.header.dtype = encoder.placement, spec.dtype
        self.header.resolved_options = encoder.resolution.as_record()
        if self.data_parallel is not None:
            self.header.data_parallel = {"world_size": self.data_parallel.world_size}
        failed: dict[str, TaskFailure] = {}
        started = time.monotonic()
        try:
            for position, task in enumerate(pending, start=1):
                name = task.metadata.name
                before = encoder.stats.copy()
                t0 = time.monotonic()
                error = evidence = None
                try:
                    with prepared_in_content_cache(self.data[name]), columns_as_lists():
                        result, evidence = self._evaluate_task(mteb, model, task, spec.batching.max_rows)
                except (DistributedError, EndpointError, EndpointMismatch):
                    # a rank is gone, or the server is down or serves another model: no task can finish
                    raise
                except Exception as exc:  # one task's failure must not end a 20-hour suite
                    if is_exhaustion(exc):
                        raise  # no space: every later task would fail the same way; stop, all written intact
                    error = exc
                if self.data_parallel is not None:
                    self.data_parallel.agree(
                        f"the outcome of {name}", "finished" if error is None else f"failed ({type(error).__name__})"
                    )
                if error is not None:
                    failed[name] = self._record_failure(name, error)
                    if config.fail_fast:
                        logger.error(
                            "--fail_fast: stopping after %s; %d task(s) not run", name, len(pending) - position
                        )
                        break
                    continue
                metric = task.metadata.main_score
                entry = self._save_result(
                    name,
                    result.task_results[0],
                    time.monotonic() - t0,
                    encoder.stats.minus(before),
                    encoder.stats,
                    evidence,
                    metric,
                )
                elapsed = time.monotonic() - started
                remaining = len(pending) - position
                logger.info(
                    "[%d/%d] %s: %s %.2f (main score, x100) in %.1fs; %d remaining, ETA %.0fs",
                    position,
                    len(pending),
                    name,
                    metric,
                    100 * entry.main_score,
                    entry.wall_s,
                    remaining,
                    elapsed / position * remaining,
                )
        finally:
            if cache:
                cache.close()
        return encoder.stats, failed

    def _evaluate_task(self, mteb, model: QZhouMtebModel, task, batch_size: int) -> tuple:
        """mteb's evaluation; with predictions kept, the gold data stays loaded until the units are built from it."""
        encode_kwargs = {"batch_size": batch_size, "show_progress_bar": True}
        if not (self.config.predictions and self.writes):
            return mteb.evaluate(
                model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True, encode_kwargs=encode_kwargs
            ), None
        # mteb writes plain JSON (GBs for large retrieval tasks): beside the run, not in a small /tmp
        state = Path(self.config.output_dir) / STATE_DIRNAME
        # named by host and pid: a folder a killed run left behind is removed by the next run (remove_stale_temp_files)
        with tempfile.TemporaryDirectory(prefix=temp_prefix("predictions"), suffix=TMP_SUFFIX, dir=state) as scratch:
            preloaded = task.data_loaded
            if not preloaded:
                task.load_data()
            try:
                result = mteb.evaluate(
                    model,
                    tasks=[task],
                    cache=None,
                    show_progress_bar=False,
                    raise_error=True,
                    encode_kwargs=encode_kwargs,
                    prediction_folder=scratch,
                )
                try:
                    evidence = collect_evidence(task, result.task_results[0], Path(scratch) / task.prediction_file_name)
                except Exception as exc:  # the score is mteb's and stands; only its evidence is missing
                    if is_exhaustion(exc):
                        raise
                    logger.warning(
                        "%s: its per-sample evidence could not be kept (%s: %s); the result is recorded "
                        "without it, and a later run that keeps evidence runs the task again",
                        task.metadata.name,
                        type(exc).__name__,
                        exc,
                    )
                    evidence = None
            finally:
                if not preloaded:
                    task.unload_data()
        return result, evidence

    def _save_result(
        self,
        name: str,
        task_result,
        wall: float,
        stats: EncodeStats,
        total: EncodeStats,
        evidence: Evidence | None = None,
        metric: str | None = None,
    ) -> TaskEntry:
        """Result and evidence files, then the record, then the manifest entry: a kill between them costs a re-run."""
        score = float(task_result.get_score())
        if not math.isfinite(score):  # mteb wrote NaN/inf: never a result that looks finished
            raise EmbeddingError(
                f"{name}: mteb computed a main score of {score}; the task's data or model output is "
                "degenerate — see the result's scores"
            )
        self.scores[name] = score
        entry = TaskEntry("finished", wall_s=round(wall, 3), main_score=score, main_metric=metric)
        readability = self.model.readability.pop(name, None)
        if readability is not None:
            entry.readability = readability.as_record()
            if readability.needs_warning(self.config.readability):
                logger.warning(
                    "%s: the model reads this task's texts poorly: %s; its score is printed but compare it with care",
                    name,
                    readability.summary(),
                )
        if not self.writes:
            return entry
        result_file = self.results_dir / f"{name}.json"
        write_task_result(task_result, result_file)
        evidence_record = write_evidence(evidence, self.store.evidence_files(name)) if evidence is not None else None
        if evidence_record is not None:
            entry.evidence = {"units": "kept" if "units_sha256" in evidence_record else evidence_record["units_note"]}
        self.store.write(
            name,
            self.spec.inputs,
            self.prefixes[name],
            self.data[name].fingerprint,
            result_file,
            score,
            evidence_record,
        )
        entry.data_fingerprint, entry.encode_stats = self.data[name].fingerprint, stats.as_record()
        self.header.encode_stats = total.as_record()
        if served := self.model.model.backend.describe():  # requests, retries, what the server reported
            self.header.endpoint = served
        manifests.update(self.manifest_file, self.header, {name: entry}, self.lock)
        return entry

    def _record_failure(self, name: str, exc: Exception) -> TaskFailure:
        """Traceback to <output_dir>/errors/<task>.txt, the error into the manifest, a log line; atomically."""
        trace_file = Path(self.config.output_dir) / "errors" / f"{name}.txt"
        failure = TaskFailure(type(exc).__name__, str(exc)[:2000], str(trace_file))
        if not self.writes:
            return failure
        atomic_write_text(trace_file, "".join(traceback.format_exception(exc)))
        manifests.update(
            self.manifest_file, self.header, {name: TaskEntry("failed", error=failure.as_record())}, self.lock
        )
        logger.error(
            "%s failed (%s: %s); traceback in %s; continuing with the other tasks",
            name,
            failure.error_type,
            failure.message[:300],
            trace_file,
        )
        return failure
