"""A PNG bar chart of the run(s) against the chosen baselines.

Complete runs are shown by task type (and the two means). A run that covers only part of the suite
has no type means (they would be partial), so the chart then shows the tasks the run covers, with the
baselines on the same tasks.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from qzhou_eval.results.aggregate import MEAN_TASK, MEAN_TYPE, TYPE_ORDER


def _columns_to_plot(report) -> tuple[object, list[str], str]:
    runs = [m for m, src in report.sources.items() if src.startswith("run")]
    complete = all(report.task_types.loc[m, MEAN_TASK] == report.task_types.loc[m, MEAN_TASK] for m in runs)
    if complete:
        table = report.task_types
        return table, [c for c in (*TYPE_ORDER, MEAN_TASK, MEAN_TYPE) if c in table.columns], "task-type scores"
    tasks = [t for t in report.convention.tasks if report.tasks.loc[runs, t].notna().any()]
    total = len(report.convention.tasks)
    return report.tasks, tasks, f"the {len(tasks)}/{total} tasks the run covers (type means need all tasks)"


def task_type_chart(report, path: str | Path) -> Path:
    """Grouped bars, one group per column, one bar per model; this run's bars are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table, columns, what = _columns_to_plot(report)
    models = list(table.index)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(columns))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(columns)), 4.8))
    for i, model in enumerate(models):
        values = table.loc[model, columns].astype(float).to_numpy()
        is_run = report.sources.get(model, "").startswith("run")
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            label=model,
            hatch="//" if is_run else None,
            edgecolor="black" if is_run else None,
        )
    return _finish(fig, ax, columns, "score (x100)", f"{report.benchmark}, {report.convention.name}: {what}", path)


def _finish(fig, ax, labels: list[str], ylabel: str, title: str, path: str | Path) -> Path:
    """Axis labels, legend, grid; saved as PNG and closed (every chart here ends the same way)."""
    import matplotlib.pyplot as plt
    import numpy as np

    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, 90), fontsize="medium", loc="left")  # never wider than the figure
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def delta_chart(paired: dict, reference: str, path: str | Path) -> Path:
    """Δ against the reference per task with its 95% interval as an error bar (none where there is no
    per-sample data: those points are drawn hollow, a bare point delta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = sorted({t for rows in paired.values() for t in rows.index})
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(tasks) + 3), 4.8))
    width = 0.8 / max(len(paired), 1)
    for i, (model, rows) in enumerate(paired.items()):
        rows = rows.reindex(tasks)
        x = np.arange(len(tasks)) + (i - (len(paired) - 1) / 2) * width
        tested = rows["ci_low"].notna().to_numpy()
        delta = rows["delta"].to_numpy(dtype=float)
        errors = np.vstack(
            [delta - rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float) - delta]
        )
        line = ax.errorbar(x[tested], delta[tested], yerr=errors[:, tested], fmt="o", capsize=4, label=model)
        ax.plot(x[~tested], delta[~tested], "o", mfc="none", color=line.lines[0].get_color())
    ax.axhline(0.0, color="black", linewidth=0.8)
    title = "95% paired bootstrap intervals (hollow: no per-sample data, point delta)"
    return _finish(fig, ax, tasks, f"Δ vs {reference} (points)", title, path)
