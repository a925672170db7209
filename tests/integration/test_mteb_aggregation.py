"""The ``mteb`` convention's task scores and means equal mteb's own ``Benchmark.get_score`` on the snapshot.

mteb reads the CC0 leaderboard snapshot through its ``ResultCache``; the report reads the same files
through qzhou-eval's loader. Where the two part ways by design, the rendered table says so.
"""

from __future__ import annotations

import logging
import math

import pytest

from qzhou_eval.report.tables import build_report, render

BENCHMARKS = ["MTEB(eng, v2)", "MTEB(cmn, v1)"]


@pytest.fixture(scope="module")
def snapshot(shared_dir):
    return shared_dir / "leaderboard-results"


@pytest.mark.parametrize("bench_name", BENCHMARKS)
def test_mteb_convention_equals_mtebs_aggregation(snapshot, bench_name, caplog):
    import mteb
    from mteb.cache import ResultCache

    caplog.set_level(logging.ERROR)
    bench = mteb.get_benchmark(bench_name)
    results = ResultCache(snapshot).load_results(tasks=bench, include_remote=False, require_model_meta=False)
    theirs = bench.get_score(results)
    report = build_report([], bench_name, baselines=snapshot, convention="mteb")
    types, tasks = report.task_types, report.tasks

    compared_tasks = 0
    for model in results:
        for task in model.select_tasks(bench.tasks).task_results:
            try:
                expected = task.get_score()
            except TypeError:  # an old-format file without a main score: mteb cannot score it either
                assert math.isnan(tasks.loc[model.model_name, task.task_name])
                continue
            ours = tasks.loc[model.model_name, task.task_name]
            if math.isnan(expected):  # mteb: a subset or split missing from the file
                assert math.isnan(ours), (model.model_name, task.task_name)
                continue
            assert ours == pytest.approx(100 * expected, abs=1e-9), (
                model.model_name,
                task.task_name,
            )
            compared_tasks += 1
    assert compared_tasks > 300

    complete = 0
    for name, scores in theirs.items():
        if "Mean(Task)" in scores and scores["Mean(Task)"] is not None:
            complete += 1
            for column, value in scores.items():
                if column != "Rank":
                    assert types.loc[name, column] == pytest.approx(100 * value, abs=1e-9), (name, column)
        elif not math.isnan(types.loc[name, "Mean(Task)"]):
            # mteb scores each revision folder on its own; the report joins them as the leaderboard does
            assert len(report.revisions[name]) > 1, f"{name}: a mean mteb does not give, and no stated reason"
            assert name in render(report), "the table names the models it joins across revisions"
    assert complete >= 9
