"""run_suite: evaluate one checkpoint on (part of) a benchmark, or on named tasks, through mteb 2.x, resumably.

Order of work, so bad input fails before any encoding: select and shard tasks, check the offline
data, choose the preset, check instruction coverage, check the output folder (writable, same model
and options), skip finished tasks, and only then load the model. A task that raises is recorded
(manifest + traceback file) and the others still run, unless ``fail_fast``.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from datetime import datetime
from pathlib import Path

from qzhou_eval.api import load_encoder
from qzhou_eval.encoder.mteb_model import QZhouMtebModel
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.config import (
    CACHE_DIRNAME,
    RunConfig,
    RunSummary,
    TaskFailure,
    instructions_for,
    request_manifest,
    resolve_model,
    results_dir_for,
)
from qzhou_eval.runs.offline import attach_data_dir, go_offline
from qzhou_eval.runs.results_io import (
    atomic_write_json,
    atomic_write_text,
    read_task_result,
    remove_stale_temp_files,
    write_task_result,
)
from qzhou_eval.runs.suites import run_tasks, shard

logger = logging.getLogger(__name__)


def _check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".qzhou-write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InvalidOptionError(f"--output_dir {str(output_dir)!r} is not writable ({exc}); choose another folder") from exc


def _set_aside_previous(output_dir: Path) -> Path:
    """--overwrite over another model/options: keep the old results, moved out of the way."""
    target = output_dir / f"replaced-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    target.mkdir()
    for item in output_dir.iterdir():
        if item.name not in (CACHE_DIRNAME, target.name) and not item.name.startswith("replaced-"):
            shutil.move(str(item), target / item.name)
    logger.warning("previous results of another model/options moved to %s", target)
    return target


def run_suite(config: RunConfig) -> RunSummary:
    """Evaluate, write mteb-layout results atomically, and return the per-task main scores and failures.

    Raises:
        InvalidOptionError, DataDirError, InstructionError, OutputDirConflict: before any encoding.
    """
    tasks = shard(run_tasks(config.benchmark, config.tasks, config.exclude_tasks, config.task_types), config.shard)
    if config.data_dir is not None:
        go_offline()
        attach_data_dir(tasks, config.data_dir)
    names = [t.metadata.name for t in tasks]
    source, model_name, choice = resolve_model(config)
    instructions = instructions_for(config, choice, names)
    if instructions is not None:
        instructions.check_coverage(names)

    output_dir = Path(config.output_dir)
    _check_writable(output_dir)
    manifest = request_manifest(config, source, model_name, instructions, choice)
    revision = manifest["model"]["revision"]
    conflicts = manifests.check_output_dir(output_dir, manifest, config.suite)
    if conflicts and not config.overwrite:
        details = "; ".join(manifests.describe_conflict(p, manifest) for p in conflicts)
        raise manifests.OutputDirConflict(
            f"{output_dir} holds results of a different model or options ({details}); pass --overwrite "
            "(old results are moved to a replaced-<time>/ folder, not deleted) or choose another --output_dir"
        )
    if conflicts:
        _set_aside_previous(output_dir)

    results_dir = results_dir_for(output_dir, model_name, revision)
    manifest_file = manifests.manifest_path(output_dir, config.suite)
    remove_stale_temp_files(results_dir)
    remove_stale_temp_files(output_dir)
    previous = manifests.load(manifest_file)
    if previous and not conflicts:  # same run continued: keep what earlier sessions recorded
        manifest.update({key: previous[key] for key in manifests.CARRIED_OVER if key in previous})

    done = {n for n in names if not config.overwrite and read_task_result(results_dir / f"{n}.json") is not None}
    pending = [t for t in tasks if t.metadata.name not in done]
    if done:
        logger.info("%d task(s) already finished, skipped: %s", len(done), sorted(done))
    hit_rate, failed = None, {}
    if pending:
        run = _TaskLoop(config, manifest, manifest_file, results_dir)
        hit_rate, failed = run.evaluate(source, model_name, revision, instructions, choice, pending)
    manifests.save(manifest_file, manifest)
    scores = {}
    for name in names:
        result = read_task_result(results_dir / f"{name}.json")
        if result is not None:
            scores[name] = float(result.get_score())
    ran = [t.metadata.name for t in pending if t.metadata.name not in failed]
    return RunSummary(results_dir, scores, ran, sorted(done), hit_rate, failed)


class _TaskLoop:
    """Loads the model once and evaluates the pending tasks one by one, recording each outcome."""

    def __init__(self, config: RunConfig, manifest: dict, manifest_file: Path, results_dir: Path) -> None:
        self.config = config
        self.manifest = manifest
        self.manifest_file = manifest_file
        self.results_dir = results_dir

    def evaluate(self, source, model_name, revision, instructions, choice, pending):
        import mteb

        config = self.config
        encoder = load_encoder(
            str(source.local_path) if source.is_local else source.name_or_path,
            preset=choice if choice is not None else "none",
            device=config.device,
            **config.encoder_options,
        )
        logger.info("options for %s:\n  %s", model_name, "\n  ".join(encoder.resolution.describe()))
        if instructions is not None:
            logger.info("instructions: %s", instructions.origin)
        cache = None
        if config.cache_dir:
            cache_root = Path(config.output_dir) / CACHE_DIRNAME if config.cache_dir is True else Path(config.cache_dir)
            cache = encoder.attach_cache(cache_root / "embeddings.sqlite")
        model = QZhouMtebModel(encoder, instructions, use_instruction=config.use_instruction, model_name=model_name,
                               revision=revision)
        atomic_write_json(self.results_dir / "model_meta.json", model.mteb_model_meta.to_dict())
        self.manifest.update(device=encoder.options.device, dtype=encoder.options.dtype,
                             resolved_options=encoder.resolution.as_record())
        failed: dict[str, TaskFailure] = {}
        started = time.monotonic()
        for position, task in enumerate(pending, start=1):
            name = task.metadata.name
            hits0, misses0 = (cache.hits, cache.misses) if cache else (0, 0)
            t0 = time.monotonic()
            try:
                result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True,
                                       encode_kwargs={"batch_size": encoder.options.batch_size, "show_progress_bar": True})
            except Exception as exc:  # one task's failure must not end a 20-hour suite
                if config.fail_fast:
                    raise
                failed[name] = self._record_failure(name, exc)
                continue
            task_result = result.task_results[0]
            write_task_result(task_result, self.results_dir / f"{name}.json")
            wall = time.monotonic() - t0
            entry = {"status": "finished", "wall_s": round(wall, 3), "main_score": float(task_result.get_score())}
            if cache:
                entry.update(cache_hits=cache.hits - hits0, cache_misses=cache.misses - misses0)
                self.manifest["cache_hit_rate"] = cache.hit_rate
            self.manifest["tasks"][name] = entry
            manifests.save(self.manifest_file, self.manifest)
            elapsed = time.monotonic() - started
            remaining = len(pending) - position
            eta = elapsed / position * remaining
            logger.info("[%d/%d] %s main_score=%.4f in %.1fs; %d remaining, ETA %.0fs",
                        position, len(pending), name, entry["main_score"], wall, remaining, eta)
        if cache:
            cache.close()
        return (cache.hit_rate if cache else None), failed

    def _record_failure(self, name: str, exc: Exception) -> TaskFailure:
        """Traceback to <output_dir>/errors/<task>.txt, the error into the manifest, a log line; atomically."""
        trace_file = Path(self.config.output_dir) / "errors" / f"{name}.txt"
        atomic_write_text(trace_file, "".join(traceback.format_exception(exc)))
        failure = TaskFailure(type(exc).__name__, str(exc)[:2000], str(trace_file))
        self.manifest["tasks"][name] = {"status": "failed", "error": failure.as_record()}
        manifests.save(self.manifest_file, self.manifest)
        logger.error("%s failed (%s: %s); traceback in %s; continuing with the other tasks",
                     name, failure.error_type, failure.message[:300], trace_file)
        return failure
