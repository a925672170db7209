"""Suite membership, the one owner: which tasks make a benchmark, and the one way mteb is asked.

Three contracts, three names: :func:`bundled_task_names` (the two QZhou suites, sorted, from the bundled
protocol files, no mteb import), :func:`benchmark_tasks` (mteb's task objects of any benchmark, in its
order) and :func:`benchmark_task_names` (any benchmark's names, sorted; bundled where possible).
"""

from __future__ import annotations

import difflib

from qzhou_eval.errors import InvalidOptionError

SUITES = ("MTEB(eng, v2)", "MTEB(cmn, v1)")


def bundled_task_names(benchmark: str) -> list[str]:
    """The suite's task names from the bundled protocol file, sorted, without importing mteb.

    The bundled files cover exactly the tasks mteb lists for each suite (a test holds them equal),
    so cheap decisions (``--only_available``, "is everything finished?", which suite a result folder
    belongs to) need no mteb import.
    """
    from qzhou_eval.instructions.registry import load_benchmark_instructions

    return sorted(load_benchmark_instructions(benchmark).tasks)


def mteb_benchmark(name: str):
    """mteb's benchmark object for ``name``.

    Raises:
        InvalidOptionError: for a name mteb does not know, with the closest benchmark names.
    """
    import mteb

    try:
        return mteb.get_benchmark(name)
    except Exception as exc:
        names = [b.name for b in mteb.get_benchmarks()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"closest: {close}" if close else f"e.g. {list(SUITES)}"
        raise InvalidOptionError(f"mteb does not know the benchmark {name!r} ({exc}); {hint}") from exc


def benchmark_tasks(benchmark: str) -> list:
    """The mteb task objects of any benchmark mteb knows, in the benchmark's order."""
    return list(mteb_benchmark(benchmark).tasks)


def benchmark_task_names(benchmark: str) -> list[str]:
    """A benchmark's task names, sorted: from the bundled file for the two QZhou suites (no mteb import)."""
    if benchmark in SUITES:
        return bundled_task_names(benchmark)
    return sorted(task.metadata.name for task in benchmark_tasks(benchmark))
