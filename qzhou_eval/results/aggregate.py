"""Leaderboard arithmetic: task score, task-type means, Mean(Task), Mean(TaskType), Borda rank.

A mean in a table is only over a complete set: a model missing a task gets blanks in every mean that
task would enter. The means over the tasks present are given apart, labelled partial (:func:`partial_means`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from qzhou_eval.results.conventions import Convention, TaskSelection
from qzhou_eval.results.load import ModelResults, TaskFile

TYPE_ORDER = ("Classification", "Clustering", "PairClassification", "Reranking", "Retrieval", "STS", "Summarization")
MEAN_TASK, MEAN_TYPE, BORDA, COVERAGE = "Mean(Task)", "Mean(TaskType)", "Rank (Borda)", "tasks"


def task_score(task_file: TaskFile, selection: TaskSelection) -> float | None:
    """Mean ``main_score`` over the selected splits and subsets, x100; None when any part is missing."""
    values: list[float] = []
    for split in selection.splits:
        entries = task_file.scores.get(split)
        if not entries:
            return None
        chosen = [e for e in entries if selection.subsets is None or e.get("hf_subset") in selection.subsets]
        if selection.subsets is not None and {e.get("hf_subset") for e in chosen} != set(selection.subsets):
            return None
        if any(e.get("main_score") is None for e in chosen):
            return None  # e.g. an old-format file whose main metric mteb could not recover
        values.extend(float(e["main_score"]) for e in chosen)
    if not values:
        return None
    return 100.0 * sum(values) / len(values)


def score_frame(models: list[ModelResults], convention: Convention) -> pd.DataFrame:
    """Rows = models (in the given order), columns = the benchmark's tasks; NaN where missing."""
    rows = {}
    for model in models:
        row = {}
        for task, selection in convention.tasks.items():
            tf = model.tasks.get(task)
            score = task_score(tf, selection) if tf else None
            row[task] = math.nan if score is None else score
        rows[model.name] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(convention.tasks))


def borda_points(scores: pd.DataFrame) -> pd.Series:
    """mteb's Borda count: per task n - rank (n = all models, ties share the average rank), missing tasks 0."""
    n = len(scores)
    return (n - scores.rank(axis=0, method="average", ascending=False)).fillna(0.0).sum(axis=1)


def borda_rank(scores: pd.DataFrame) -> pd.Series:
    """1 = most Borda points; equal points share the best rank (``min``), as on the leaderboard."""
    return borda_points(scores).rank(method="min", ascending=False).astype(int)


def task_type_table(scores: pd.DataFrame, convention: Convention) -> pd.DataFrame:
    """One row per model: coverage, each task type's mean, Mean(Task), Mean(TaskType), Borda rank."""
    types = [t for t in TYPE_ORDER if t in set(convention.task_types.values())]
    out = pd.DataFrame(index=scores.index)
    total = scores.shape[1]
    out[COVERAGE] = [f"{int(n)}/{total}" for n in scores.notna().sum(axis=1)]
    for task_type in types:
        columns = [t for t, ty in convention.task_types.items() if ty == task_type]
        block = scores[columns]
        out[task_type] = block.mean(axis=1).where(block.notna().all(axis=1))
    complete = scores.notna().all(axis=1)
    out[MEAN_TASK] = scores.mean(axis=1).where(complete)
    out[MEAN_TYPE] = out[types].mean(axis=1).where(complete)
    out[BORDA] = borda_rank(scores)
    return out


@dataclass(frozen=True)
class PartialMean:
    """A mean over only the tasks present: what mteb's ``get_benchmark_result`` prints for a partial run."""

    column: str
    mean: float
    present: int
    total: int


def partial_means(scores: pd.DataFrame, convention: Convention) -> dict[str, list[PartialMean]]:
    """For each model with some but not all tasks: every incomplete column's mean over the tasks present.

    The tables leave those cells blank (a mean over other tasks is not comparable); reports list these
    separately, labelled with their coverage, so a partial run reads as partial rather than as empty.
    """
    types = [t for t in TYPE_ORDER if t in set(convention.task_types.values())]
    out: dict[str, list[PartialMean]] = {}
    for model, row in scores.iterrows():
        present = row.notna()
        if present.all() or not present.any():
            continue
        means, type_means = [], []
        for task_type in types:
            columns = [t for t, ty in convention.task_types.items() if ty == task_type]
            have = int(present[columns].sum())
            if have:
                type_means.append(float(row[columns].mean()))
            if 0 < have < len(columns):
                means.append(PartialMean(task_type, type_means[-1], have, len(columns)))
        means.append(PartialMean(MEAN_TASK, float(row.mean()), int(present.sum()), len(row)))
        means.append(PartialMean(MEAN_TYPE, sum(type_means) / len(type_means), len(type_means), len(types)))
        out[str(model)] = means
    return out


def add_deltas(table: pd.DataFrame, reference: str, columns: list[str]) -> pd.DataFrame:
    """Columns ``Δ <col>`` = value minus the reference model's value."""
    if reference not in table.index:
        from qzhou_eval.errors import InvalidOptionError

        raise InvalidOptionError(f"reference model {reference!r} is not in the table; models: {list(table.index)}")
    out = table.copy()
    for column in columns:
        out[f"Δ {column}"] = table[column] - table.loc[reference, column]
    return out
