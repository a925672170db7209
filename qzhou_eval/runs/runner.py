"""run_suite: evaluate one checkpoint on (part of) a benchmark through mteb 2.x, resumably.

Order of work, so bad input fails before any encoding: select and shard tasks, check the offline
data, check instruction coverage, check the output folder (writable, same model and options),
skip finished tasks, and only then load the model.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from qzhou_eval.api import load_encoder
from qzhou_eval.encoder.mteb_model import QZhouMtebModel
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import InstructionSet, load_benchmark_instructions
from qzhou_eval.modeling.source import resolve_source
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.offline import attach_data_dir, go_offline
from qzhou_eval.runs.results_io import (
    atomic_write_json,
    read_task_result,
    remove_stale_temp_files,
    write_task_result,
)
from qzhou_eval.runs.suites import select_tasks, shard, suite_tasks

logger = logging.getLogger(__name__)

CACHE_DIRNAME = ".embedding_cache"


@dataclass
class RunConfig:
    """Everything a suite run needs; the CLI only fills this in."""

    model_name_or_path: str | None
    benchmark: str
    output_dir: Path
    encoder_options: dict[str, Any] = field(default_factory=dict)  # explicit load_encoder keywords only
    preset: str | None = None
    use_instruction: bool = False
    instructions_file: Path | None = None
    tasks: list[str] = field(default_factory=list)
    exclude_tasks: list[str] = field(default_factory=list)
    task_types: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    cache_dir: Path | None | bool = True  # True: inside output_dir; False/None: off
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    model_name: str | None = None
    device: str | None = None


@dataclass
class RunSummary:
    results_dir: Path
    scores: dict[str, float]
    ran: list[str]
    skipped: list[str]
    cache_hit_rate: float | None


def _model_name(config: RunConfig, source) -> str:
    if config.model_name:
        if "/" not in config.model_name:
            raise InvalidOptionError(f"--model_name must look like org/name, got {config.model_name!r}")
        return config.model_name
    return source.name_or_path if not source.is_local else f"local/{source.local_path.name}"


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


def _instructions(config: RunConfig) -> InstructionSet | None:
    if not config.use_instruction:
        return None
    if config.instructions_file:
        return InstructionSet.from_file(config.instructions_file)
    return load_benchmark_instructions(config.benchmark)


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
    instructions = _instructions(config)
    names = [t.metadata.name for t in tasks]
    if instructions is not None:
        instructions.check_coverage(names)

    output_dir = Path(config.output_dir)
    _check_writable(output_dir)
    source = resolve_source(config.model_name_or_path) if config.model_name_or_path else None
    if source is None and config.preset is None:
        raise InvalidOptionError("--model_name_or_path is required unless --preset names the model")
    if source is None:
        from qzhou_eval.presets import load_preset

        source = resolve_source(load_preset(config.preset).model)
    model_name = _model_name(config, source)
    revision = source.fingerprint()
    manifest = manifests.new_manifest(
        benchmark=config.benchmark,
        model={"name": model_name, "path": source.name_or_path, "revision": revision},
        # Batch size and device never change an embedding, so they may differ between resumed runs.
        options={**{k: v for k, v in sorted(config.encoder_options.items()) if k != "batch_size"},
                 "preset": config.preset, "use_instruction": config.use_instruction},
        batch_size=config.encoder_options.get("batch_size"),
        instructions_sha256=instructions.sha256() if instructions else None,
        data_dir=str(config.data_dir) if config.data_dir else None,
    )
    conflicts = manifests.check_output_dir(output_dir, manifest, config.benchmark)
    if conflicts and not config.overwrite:
        details = "; ".join(manifests.describe_conflict(p, manifest) for p in conflicts)
        raise manifests.OutputDirConflict(
            f"{output_dir} holds results of a different model or options ({details}); pass --overwrite "
            "(old results are moved to a replaced-<time>/ folder, not deleted) or choose another --output_dir"
        )
    if conflicts:
        _set_aside_previous(output_dir)

    results_dir = output_dir / model_name.replace("/", "__").replace(" ", "_") / revision
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
        result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True)
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
