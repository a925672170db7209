"""Named split/subset conventions: which parts of a result file make up a task's score.

``mteb`` is the installed mteb's own benchmark definition (each task's eval splits and subsets);
the others are data files in ``conventions/``, e.g. ``leaderboard-2025-08``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mteb

from qzhou_eval.benchmarks import mteb_benchmark
from qzhou_eval.errors import InvalidOptionError

_DATA = Path(__file__).resolve().parent / "conventions"
MTEB_CONVENTION = "mteb"


@dataclass(frozen=True)
class TaskSelection:
    """The splits and subsets (None = all in the file) that a task's score averages over."""

    splits: tuple[str, ...]
    subsets: tuple[str, ...] | None


@dataclass(frozen=True)
class Convention:
    name: str
    description: str
    benchmark: str
    tasks: dict[str, TaskSelection]
    task_types: dict[str, str]

    def label(self) -> str:
        return f"{self.name} ({self.description})"


def available_conventions() -> list[str]:
    return [MTEB_CONVENTION, *sorted(p.stem for p in _DATA.glob("*.json"))]


def load_convention(name: str, benchmark: str) -> Convention:
    """Resolve convention ``name`` for ``benchmark`` into per-task splits and subsets.

    Raises:
        InvalidOptionError: unknown convention or benchmark, or a convention that does not define the benchmark.
    """
    bench = mteb_benchmark(benchmark)
    tasks = list(bench.tasks)
    types = {t.metadata.name: t.metadata.type for t in tasks}
    if name == MTEB_CONVENTION:
        # The benchmark's own task objects: their eval_splits / hf_subsets are the benchmark's selection (MTEB(eng, v2)
        # scores MassiveIntentClassification on test only), which the task metadata's lists are not.
        selection = {t.metadata.name: TaskSelection(tuple(t.eval_splits), tuple(t.hf_subsets)) for t in tasks}
        return Convention(
            name, f"benchmark definitions of the installed mteb {mteb.__version__}", benchmark, selection, types
        )
    path = _DATA / f"{name}.json"
    if not path.is_file():
        raise InvalidOptionError.for_choice("convention", name, available_conventions())
    data = json.loads(path.read_text(encoding="utf-8"))
    spec = data.get("benchmarks", {}).get(benchmark)
    if spec is None:
        raise InvalidOptionError(
            f"convention {name!r} does not define {benchmark!r}; it covers {sorted(data.get('benchmarks', {}))}"
        )
    default, overrides = spec.get("default", {}), spec.get("tasks", {})
    selection = {}
    for task in tasks:
        rule = {**default, **overrides.get(task.metadata.name, {})}
        splits = rule.get("splits", "metadata")
        splits = tuple(task.metadata.eval_splits) if splits == "metadata" else tuple(splits)
        subsets = rule.get("subsets")
        selection[task.metadata.name] = TaskSelection(splits, tuple(subsets) if subsets else None)
    return Convention(name, data.get("description", ""), benchmark, selection, types)


TASKS_BENCHMARK = "tasks"  # compare/report of named tasks (a --tasks run): no suite, every scored entry


def files_convention(task_files: dict) -> Convention:
    """Every split and subset in the result files themselves (mteb's ``get_score``): for runs of named tasks."""
    selection = {task: TaskSelection(tuple(sorted(tf.scores)), None) for task, tf in sorted(task_files.items())}
    types = {task: _task_type(task) for task in selection}
    return Convention(MTEB_CONVENTION, "every split and subset in the result files", TASKS_BENCHMARK, selection, types)


def _task_type(task: str) -> str:
    try:
        return mteb.get_task(task).metadata.type
    except Exception:
        return "unknown"
