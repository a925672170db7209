"""run_suite: evaluate one checkpoint on (part of) a benchmark through mteb 2.x, resumably.

Order of work, so bad input fails before any encoding: select and shard tasks, check the offline
data, check instruction coverage, check the output folder (writable, same model and options),
skip finished tasks, and only then load the model.
"""

from __future__ import annotations

import logging
import shutil
import time
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
    instructions_for,
    request_manifest,
    resolve_model,
    results_dir_for,
)
from qzhou_eval.runs.offline import attach_data_dir, go_offline
from qzhou_eval.runs.results_io import (
    atomic_write_json,
    read_task_result,
    remove_stale_temp_files,
    write_task_result,
)
from qzhou_eval.runs.suites import select_tasks, shard, suite_tasks

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
    """Evaluate, write mteb-layout results atomically, and return the per-task main scores.

    Raises:
        InvalidOptionError, DataDirError, InstructionError, OutputDirConflict: before any encoding.
    """
    tasks = shard(
        select_tasks(suite_tasks(config.benchmark), config.benchmark, config.tasks, config.exclude_tasks, config.task_types),
        config.shard,
    )
    if config.data_dir is not None:
        go_offline()
        attach_data_dir(tasks, config.data_dir)
    instructions = instructions_for(config)
    names = [t.metadata.name for t in tasks]
    if instructions is not None:
        instructions.check_coverage(names)

    output_dir = Path(config.output_dir)
    _check_writable(output_dir)
    source, model_name = resolve_model(config)
    manifest = request_manifest(config, source, model_name, instructions)
    revision = manifest["model"]["revision"]
    conflicts = manifests.check_output_dir(output_dir, manifest, config.benchmark)
    if conflicts and not config.overwrite:
        details = "; ".join(manifests.describe_conflict(p, manifest) for p in conflicts)
        raise manifests.OutputDirConflict(
            f"{output_dir} holds results of a different model or options ({details}); pass --overwrite "
            "(old results are moved to a replaced-<time>/ folder, not deleted) or choose another --output_dir"
        )
    if conflicts:
        _set_aside_previous(output_dir)

    results_dir = results_dir_for(output_dir, model_name, revision)
    manifest_file = manifests.manifest_path(output_dir, config.benchmark)
    remove_stale_temp_files(results_dir)
    remove_stale_temp_files(output_dir)
    previous = manifests.load(manifest_file)
    if previous and not conflicts:
        manifest["tasks"] = previous.get("tasks", {})
        manifest["created"] = previous.get("created", manifest["created"])

    done = {n for n in names if not config.overwrite and read_task_result(results_dir / f"{n}.json") is not None}
    pending = [t for t in tasks if t.metadata.name not in done]
    if done:
        logger.info("%d task(s) already finished, skipped: %s", len(done), sorted(done))
    hit_rate = None
    if pending:
        hit_rate = _evaluate(config, source, model_name, revision, instructions, pending, results_dir, manifest, manifest_file)
    manifests.save(manifest_file, manifest)
    scores = {}
    for name in names:
        result = read_task_result(results_dir / f"{name}.json")
        if result is not None:
            scores[name] = float(result.get_score())
    return RunSummary(results_dir, scores, [t.metadata.name for t in pending], sorted(done), hit_rate)


def _evaluate(config, source, model_name, revision, instructions, pending, results_dir, manifest, manifest_file):
    import mteb

    encoder = load_encoder(
        str(source.local_path) if source.is_local else source.name_or_path,
        preset=config.preset,
        device=config.device,
        **config.encoder_options,
    )
    cache = None
    if config.cache_dir:
        cache_root = Path(config.output_dir) / CACHE_DIRNAME if config.cache_dir is True else Path(config.cache_dir)
        cache = encoder.attach_cache(cache_root / "embeddings.sqlite")
    model = QZhouMtebModel(encoder, instructions, use_instruction=config.use_instruction, model_name=model_name,
                           revision=revision)
    atomic_write_json(results_dir / "model_meta.json", model.mteb_model_meta.to_dict())
    manifest.update(device=encoder.options.device, dtype=encoder.options.dtype,
                    resolved_options=encoder.options.embedding_options())
    started = time.monotonic()
    for position, task in enumerate(pending, start=1):
        name = task.metadata.name
        hits0, misses0 = (cache.hits, cache.misses) if cache else (0, 0)
        t0 = time.monotonic()
        result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True,
                               encode_kwargs={"batch_size": encoder.options.batch_size, "show_progress_bar": True})
        task_result = result.task_results[0]
        write_task_result(task_result, results_dir / f"{name}.json")
        wall = time.monotonic() - t0
        entry = {"wall_s": round(wall, 3), "main_score": float(task_result.get_score())}
        if cache:
            entry.update(cache_hits=cache.hits - hits0, cache_misses=cache.misses - misses0)
            manifest["cache_hit_rate"] = cache.hit_rate
        manifest["tasks"][name] = entry
        manifests.save(manifest_file, manifest)
        elapsed = time.monotonic() - started
        remaining = len(pending) - position
        eta = elapsed / position * remaining
        logger.info("[%d/%d] %s main_score=%.4f in %.1fs; %d remaining, ETA %.0fs",
                    position, len(pending), name, entry["main_score"], wall, remaining, eta)
    if cache:
        cache.close()
        return cache.hit_rate
    return None
