"""compare BASE NEW: per-task and mean deltas, worst first, with drop thresholds for a CI gate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qzhou_eval.benchmarks import SUITES, bundled_task_names
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import NON_NEGATIVE, check_number
from qzhou_eval.results.aggregate import score_frame
from qzhou_eval.results.conventions import load_convention
from qzhou_eval.results.load import ModelResults
from qzhou_eval.results.runs import load_run_dir


@dataclass
class Comparison:
    benchmark: str
    convention: str
    rows: pd.DataFrame  # index task; columns base, new, delta, flag
    mean_base: float
    mean_new: float
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def mean_delta(self) -> float:
        return self.mean_new - self.mean_base


def _single_model(path: str | Path, what: str) -> ModelResults:
    models = load_run_dir(path)
    if len(models) != 1:
        raise InvalidOptionError(
            f"{what} {path} holds {len(models)} models ({[m.name for m in models]}); point at one <org__model> "
            "or <org__model>/<revision> folder"
        )
    return models[0]


def detect_benchmark(*models: ModelResults) -> str:
    """The suite whose task list overlaps the results most."""
    found = {t for m in models for t in m.tasks}
    overlap = {suite: len(found & set(bundled_task_names(suite))) for suite in SUITES}
    best = max(overlap, key=overlap.get)
    if overlap[best] == 0:
        raise InvalidOptionError(f"none of the result tasks belongs to {list(SUITES)}; pass --benchmark")
    return best


def compare_runs(
    base: str | Path,
    new: str | Path,
    *,
    benchmark: str | None = None,
    convention: str = "leaderboard-2025-08",
    max_task_drop: float = 1.0,
    max_mean_drop: float = 0.3,
) -> Comparison:
    """Deltas NEW - BASE in points (x100). A task drop beyond ``max_task_drop``, a mean drop beyond
    ``max_mean_drop`` (over the tasks both have), and a task BASE has but NEW lacks are flagged."""
    check_number("--max-task-drop (points)", max_task_drop, NON_NEGATIVE)
    check_number("--max-mean-drop (points)", max_mean_drop, NON_NEGATIVE)
    base_model, new_model = _single_model(base, "BASE"), _single_model(new, "NEW")
    benchmark = benchmark or detect_benchmark(base_model, new_model)
    conv = load_convention(convention, benchmark)
    base_model.name, new_model.name = "base", "new"
    scores = score_frame([base_model, new_model], conv).T
    has_base, has_new = scores["base"].notna(), scores["new"].notna()
    common = scores[has_base & has_new].copy()
    if common.empty:
        raise InvalidOptionError(
            f"nothing to compare: no {benchmark} task has a score in both BASE ({sorted(scores.index[has_base])[:5]}) "
            f"and NEW ({sorted(scores.index[has_new])[:5]}); point both at runs of the same suite"
        )
    common["delta"] = common["new"] - common["base"]
    # "not within tolerance" rather than "beyond it": a delta that is not a number can never pass
    common["flag"] = ["" if d >= -max_task_drop else "DROP" for d in common["delta"]]
    common = common.sort_values("delta")
    only_base = sorted(scores.index[has_base & ~has_new])
    only_new = sorted(scores.index[~has_base & has_new])
    result = Comparison(
        benchmark,
        conv.name,
        common,
        float(common["base"].mean()) if len(common) else math.nan,
        float(common["new"].mean()) if len(common) else math.nan,
        only_base,
        only_new,
    )
    result.flags += [f"{task}: {row.delta:+.2f} (< -{max_task_drop})" for task, row in common.iterrows() if row.flag]
    if len(common) and not result.mean_delta >= -max_mean_drop:
        result.flags.append(f"mean over {len(common)} common tasks: {result.mean_delta:+.2f} (< -{max_mean_drop})")
    result.flags += [f"{task}: missing in NEW" for task in only_base]
    return result


def render_comparison(cmp: Comparison) -> str:
    lines = [f"{cmp.benchmark}, convention {cmp.convention}: NEW - BASE in points, worst first", ""]
    table = cmp.rows.copy()
    table.index.name = "task"
    lines.append(table.reset_index().to_markdown(index=False, tablefmt="github", floatfmt=".2f"))
    lines += [
        "",
        f"mean over {len(cmp.rows)} common tasks: base {cmp.mean_base:.2f}, new {cmp.mean_new:.2f}, "
        f"delta {cmp.mean_delta:+.2f}",
    ]
    if cmp.only_base:
        lines.append(f"tasks only in BASE (missing in NEW): {cmp.only_base}")
    if cmp.only_new:
        lines.append(f"tasks only in NEW: {cmp.only_new}")
    lines.append(f"{len(cmp.flags)} flag(s)" + (":\n  " + "\n  ".join(cmp.flags) if cmp.flags else ""))
    return "\n".join(lines) + "\n"
