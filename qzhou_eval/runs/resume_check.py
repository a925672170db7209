"""Recognise a run whose selected tasks are all finished, without importing mteb or torch.

A resumed or repeated run then answers in well under a second instead of paying mteb's import and
benchmark-registry start-up; any doubt (missing manifest entry, unreadable file, other options)
returns None and the full runner takes over, with its own checks and errors.
"""

from __future__ import annotations

import json
from pathlib import Path

from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.config import RunConfig, RunSummary, instructions_for, request_manifest, resolve_model, results_dir_for
from qzhou_eval.runs.suites import bundled_task_names, shard_names


def _is_result_of(path: Path, task_name: str) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("task_name") == task_name and bool(data.get("scores"))


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
    """The summary when every selected task already has this same run's result; else None."""
    if config.overwrite or config.task_types:
        return None
    names = _selected_names(config)
    output_dir = Path(config.output_dir)
    if not names or not output_dir.is_dir():
        return None
    try:
        source, model_name, choice = resolve_model(config)
        request = request_manifest(config, source, model_name, instructions_for(config, choice, names), choice)
    except (QZhouEvalError, OSError):
        return None
    if manifests.check_output_dir(output_dir, request, config.suite):
        return None
    recorded = manifests.load(manifests.manifest_path(output_dir, config.suite)) or {}
    results_dir = results_dir_for(output_dir, model_name, request["model"]["revision"])
    scores = {}
    for name in names:
        entry = recorded.get("tasks", {}).get(name)
        if not entry or "main_score" not in entry or not _is_result_of(results_dir / f"{name}.json", name):
            return None
        scores[name] = float(entry["main_score"])
    return RunSummary(results_dir, scores, ran=[], skipped=names, cache_hit_rate=None)
