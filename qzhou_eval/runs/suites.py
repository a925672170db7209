"""Benchmark task lists, task selection with helpful errors, and deterministic sharding."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from qzhou_eval.benchmarks import benchmark_tasks
from qzhou_eval.errors import InvalidOptionError


def named_tasks(names: Sequence[str]) -> list:
    """mteb task objects for task names given without a benchmark (any task mteb knows).

    Raises:
        InvalidOptionError: naming every unknown task and the closest known names.
    """
    import mteb

    found, unknown = [], []
    for name in dict.fromkeys(names):
        try:
            found.append(mteb.get_task(name))  # superseded tasks (e.g. STSBenchmark) included
        except KeyError:
            unknown.append(name)
    if unknown:
        known = [t.metadata.name for t in mteb.get_tasks(exclude_superseded=False)]
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (closest: {close})" if close else ""))
        raise InvalidOptionError(f"mteb knows no task {', '.join(hints)}")
    return found


def run_tasks(benchmark: str | None, include: Sequence[str], exclude: Sequence[str], task_types: Sequence[str]) -> list:
    """The tasks a run evaluates: the benchmark's, filtered; or the named tasks when there is no benchmark."""
    if benchmark:
        return select_tasks(benchmark_tasks(benchmark), benchmark, include, exclude, task_types)
    return select_tasks(named_tasks(include), "the named tasks", (), exclude, task_types)


def _unknown_task_error(name: str, benchmark: str, suite_names: Sequence[str]) -> InvalidOptionError:
    import mteb

    close = difflib.get_close_matches(name, suite_names, n=3, cutoff=0.5)
    hint = f"; closest in the suite: {close}" if close else ""
    try:
        mteb.get_task(name)
        return InvalidOptionError(f"task {name!r} is not part of {benchmark}{hint}")
    except Exception:
        return InvalidOptionError(f"unknown task {name!r}{hint}")


def select_tasks(
    tasks: Sequence,
    benchmark: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    task_types: Sequence[str] = (),
) -> list:
    """Filter a suite's tasks; every name given must exist in the suite.

    Raises:
        InvalidOptionError: naming the unknown task or type and the closest valid names.
    """
    names = [t.metadata.name for t in tasks]
    for name in [*include, *exclude]:
        if name not in names:
            raise _unknown_task_error(name, benchmark, names)
    types = sorted({t.metadata.type for t in tasks})
    for task_type in task_types:
        if task_type not in types:
            raise InvalidOptionError.for_choice(f"task type of {benchmark}", task_type, types)
    chosen = [t for t in tasks if (not include or t.metadata.name in include)]
    chosen = [t for t in chosen if t.metadata.name not in exclude]
    if task_types:
        chosen = [t for t in chosen if t.metadata.type in task_types]
    if not chosen:
        raise InvalidOptionError("the task selection is empty; check --tasks, --exclude_tasks and --task_types")
    return chosen


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) with 0 <= I < N."""
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise InvalidOptionError(f"--shard must look like I/N (e.g. 0/2), got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InvalidOptionError(f"--shard {value!r} is out of range: need 0 <= I < N and N >= 1")
    return index, count


def shard_names(names: Sequence[str], spec: tuple[int, int] | None) -> set[str]:
    """Round-robin over the task names in sorted order (independent of mteb's listing order)."""
    if spec is None:
        return set(names)
    index, count = spec
    return {name for position, name in enumerate(sorted(names)) if position % count == index}


def shard(tasks: Sequence, spec: tuple[int, int] | None) -> list:
    """The tasks of shard ``spec``: shards are disjoint and their union is the whole list."""
    keep = shard_names([t.metadata.name for t in tasks], spec)
    return [task for task in tasks if task.metadata.name in keep]
