"""Recognise a run whose selected tasks are all finished, without importing mteb or torch.

A resumed or repeated run then answers in well under a second instead of paying mteb's import and
benchmark-registry start-up; any doubt (no record, other inputs, changed data, a result file that
is not the recorded one) leaves the summary out and the full runner takes over, with its own checks and
errors, reusing this check's resolution so a run resolves once. Printed scores are read from the verified
result files, never from the records.
"""

from __future__ import annotations

from pathlib import Path

from qzhou_eval.benchmarks import bundled_task_names
from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.record.provenance import RecordStore
from qzhou_eval.resolution.resolve import cuda_surely_absent, resolve
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.runs.admission import examine
from qzhou_eval.runs.config import RunConfig, RunSummary
from qzhou_eval.runs.folder_lock import check_state_paths
from qzhou_eval.runs.suites import shard_names
from qzhou_eval.runs.task_data import folder_fingerprints


def _selected_names(config: RunConfig) -> list[str] | None:
    """The run's task names when they are known without mteb: named tasks, or a bundled suite's."""
    if config.benchmark is None:
        selected = [n for n in config.tasks if n not in config.exclude_tasks]
    else:
        try:
            suite = bundled_task_names(config.benchmark)
        except QZhouEvalError:
            return None  # another mteb benchmark: only mteb knows its tasks
        if any(name not in suite for name in [*config.tasks, *config.exclude_tasks]):
            return None
        selected = [n for n in suite if (not config.tasks or n in config.tasks) and n not in config.exclude_tasks]
    return sorted(shard_names(selected, config.shard))


def finished_run_summary(config: RunConfig) -> RunSummary | None:
    """The summary when every selected task already has a result its record binds to this request; else None."""
    return check_resume(config)[0]


def check_resume(config: RunConfig) -> tuple[RunSummary | None, RunSpec | None]:
    """The summary when every selected task already has a result its record binds to this request (else None),
    and the resolved run when it could be resolved here (the runner reuses it: a run resolves once).

    Only ``--data_dir`` runs qualify (a hub dataset's pinned revision is known only to mteb).
    """
    if config.overwrite or config.task_types or config.data_dir is None:
        return None, None
    if config.device is None and config.encoder_options.get("dtype") is None and not cuda_surely_absent():
        return None, None  # the dtype default depends on CUDA, which only torch can tell
    names = _selected_names(config)
    output_dir = Path(config.output_dir)
    if not names or not output_dir.is_dir():
        return None, None
    try:
        spec = resolve(config.request(names))
    except (QZhouEvalError, OSError):
        return None, None  # the full runner resolves again and names the problem
    return _summary_if_finished(config, spec, names, output_dir), spec


def _summary_if_finished(config: RunConfig, spec: RunSpec, names: list[str], output_dir: Path) -> RunSummary | None:
    store = RecordStore(output_dir, spec.model_name, spec.revision)
    try:
        check_state_paths(output_dir, config.suite, spec.results_dir(output_dir), store, names)
    except QZhouEvalError:
        return None  # the full runner names the problem
    fingerprints = folder_fingerprints(Path(config.data_dir), names)
    if None in fingerprints.values():
        return None
    state = examine(output_dir, config.suite, spec, fingerprints, config.predictions)  # the runner's own rule
    if state.conflicts or state.finished() != sorted(names):
        return None
    scores = {name: state.store.verified_score(name, state.results_dir / f"{name}.json") for name in names}
    if None in scores.values():
        return None  # changed since the verdict: the full runner decides
    return RunSummary(state.results_dir, scores, ran=[], skipped=names, encode_stats=None)
