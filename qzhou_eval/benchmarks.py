"""The two suites this harness reproduces, and their task lists without importing mteb."""

from __future__ import annotations

SUITES = ("MTEB(eng, v2)", "MTEB(cmn, v1)")


def bundled_task_names(benchmark: str) -> list[str]:
    """The suite's task names from the bundled protocol file, without importing mteb.

    The bundled files cover exactly the tasks mteb lists for each suite (a test holds them equal),
    so cheap decisions (``--only_available``, "is everything finished?", which suite a result folder
    belongs to) need no mteb import.
    """
    from qzhou_eval.instructions.registry import load_benchmark_instructions

    return sorted(load_benchmark_instructions(benchmark).tasks)
