"""run_suite: evaluate one checkpoint on (part of) a benchmark, or on named tasks, through mteb 2.x, resumably.

Order of work, so bad input fails before any encoding: select and shard tasks, check and fingerprint
the offline data (every split file opened), resolve the request (preset, options, instructions),
check the output folder (writable; no live run with other inputs; no results of other inputs), decide
per task from its record whether its result stands, and only then load the model. A task that raises
is recorded (manifest + traceback file) and the others still run, unless ``fail_fast``.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from qzhou_eval._ranks import launched_by_torchrun
from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.modeling.loading import check_device, resolve_device
from qzhou_eval.record.provenance import RecordStore
from qzhou_eval.resolution.resolve import resolve
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.admission import admit_as_writer, admitted_by_writer
from qzhou_eval.runs.config import RunConfig, RunSummary, request_manifest
from qzhou_eval.runs.folder_lock import OutputFolderLock
from qzhou_eval.runs.offline import attach_data_dir, go_offline
from qzhou_eval.runs.suites import run_tasks, shard
from qzhou_eval.runs.task_data import TaskData, check_local_data, hub_data
from qzhou_eval.runs.task_loop import TaskLoop

if TYPE_CHECKING:
    from qzhou_eval.encoder.data_parallel import DataParallel

logger = logging.getLogger(__name__)


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
                lock, done = admit_as_writer(config, tasks, data, spec, stack, data_parallel)
            else:
                lock, done = None, admitted_by_writer(data_parallel)
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
    results_dir = spec.results_dir(output_dir)
    store = RecordStore(output_dir, spec.model_name, spec.revision)
    pending = [t for t in tasks if t.metadata.name not in done]
    stats, failed, scores = None, {}, {}
    if pending:
        run = TaskLoop(
            config,
            spec,
            request_manifest(config, spec),
            manifests.manifest_path(output_dir, config.suite),
            results_dir,
            lock,
            store,
            data,
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
