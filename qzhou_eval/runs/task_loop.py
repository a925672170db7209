"""The task loop: the model loaded once, each pending task evaluated through mteb and recorded as it ends."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from qzhou_eval._atomic import TMP_SUFFIX, temp_prefix
from qzhou_eval.api import build_encoder
from qzhou_eval.encoder.mteb_model import QZhouMtebModel
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import (
    DistributedError,
    EmbeddingError,
    EndpointError,
    EndpointMismatch,
)
from qzhou_eval.integrity.exhaustion import is_exhaustion
from qzhou_eval.record.provenance import STATE_DIRNAME, RecordStore
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.run_manifest import RunManifest, TaskEntry
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.column_lists import columns_as_lists
from qzhou_eval.runs.config import CACHE_DIRNAME, RunConfig, TaskFailure
from qzhou_eval.runs.evidence import Evidence, collect_evidence, write_evidence
from qzhou_eval.runs.folder_lock import OutputFolderLock
from qzhou_eval.runs.results_io import (
    atomic_write_json,
    atomic_write_text,
    write_task_result,
)
from qzhou_eval.runs.task_data import TaskData, prepared_in_content_cache

if TYPE_CHECKING:
    from qzhou_eval.encoder.data_parallel import DataParallel

logger = logging.getLogger(__name__)


class TaskLoop:
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
            self.spec.prefixes_sha256(name),
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
