"""compare BASE NEW: per-task deltas with their uncertainty, and the verdict a CI gate acts on.

Where both runs kept per-sample evidence over the same data (qzhou-eval runs, the default), each
task gets a paired bootstrap interval and a paired randomisation p-value (significance/paired.py),
Benjamini-Hochberg across the suite, and a verdict: significant drop, within noise, significant
gain. Results without per-sample data (leaderboard aggregates, other tools, --no_predictions runs)
get point deltas against ``--max-task-drop``, labelled as such; no interval is ever made up for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qzhou_eval.benchmarks import SUITES, bundled_task_names
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import FRACTION, NON_NEGATIVE, POSITIVE_INT, check_number
from qzhou_eval.results.aggregate import task_score
from qzhou_eval.results.conventions import TASKS_BENCHMARK, Convention, files_convention, load_convention
from qzhou_eval.results.load import ModelResults
from qzhou_eval.results.runs import load_run_dir

DROP, NOISE, GAIN = "significant drop", "within noise", "significant gain"
POINT_DROP, POINT_OK = "drop (point delta)", "ok (point delta)"
_SCORE_MATCH = 1e-7  # points: units must rebuild the score shown (x100 of mteb's, rounding included)


@dataclass(frozen=True)
class Settings:
    """How a comparison decides; the defaults are the CLI's."""

    alpha: float = 0.05  # false discovery rate across the compared tasks
    min_effect: float = 0.0  # points a significant drop must exceed to fail the gate
    max_task_drop: float = 1.0  # points: the gate for tasks without per-sample data
    max_mean_drop: float = 0.3  # points: the gate for the mean when some task lacks per-sample data
    resamples: int = 10_000
    seed: int = 0
    require_all: bool = False  # a task BASE has and NEW lacks fails the gate (default: listed, compared on the rest)

    def __post_init__(self) -> None:
        check_number("--alpha", self.alpha, FRACTION)
        check_number("--min-effect (points)", self.min_effect, NON_NEGATIVE)
        check_number("--max-task-drop (points)", self.max_task_drop, NON_NEGATIVE)
        check_number("--max-mean-drop (points)", self.max_mean_drop, NON_NEGATIVE)
        check_number("--resamples", self.resamples, POSITIVE_INT)
        if not 0.0 < self.alpha < 1.0:
            raise InvalidOptionError(f"--alpha must be between 0 and 1 (exclusive), got {self.alpha}")


@dataclass
class Comparison:
    benchmark: str
    convention: str
    settings: Settings
    # index task; columns base, new, delta, ci_low, ci_high, p, q, verdict, units, note (points, x100)
    rows: pd.DataFrame
    mean_base: float
    mean_new: float
    mean_ci: tuple[float, float] | None = None  # the suite mean's interval, when every task has per-sample data
    mean_note: str = ""
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def mean_delta(self) -> float:
        return self.mean_new - self.mean_base

    def as_record(self) -> dict:
        """The JSON CI scripts read: the same figures as the table."""

        def number(value):
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        tasks = {
            task: {key: number(row[key]) for key in self.rows.columns}
            for task, row in self.rows.to_dict("index").items()
        }
        return {
            "benchmark": self.benchmark,
            "convention": self.convention,
            "settings": self.settings.__dict__,
            "tasks": tasks,
            "mean": {
                "base": number(self.mean_base),
                "new": number(self.mean_new),
                "delta": number(self.mean_delta),
                "ci_low": self.mean_ci[0] if self.mean_ci else None,
                "ci_high": self.mean_ci[1] if self.mean_ci else None,
                "note": self.mean_note,
            },
            "only_base": self.only_base,
            "only_new": self.only_new,
            "flags": self.flags,
            "exit_code": 1 if self.flags else 0,
        }


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


def comparison_benchmark(*models: ModelResults) -> str:
    """The suite that holds every task of the runs; else ``tasks`` (every task, as the runs scored it)."""
    found = {t for m in models for t in m.tasks}
    for suite in SUITES:
        if found <= set(bundled_task_names(suite)):
            return suite
    return TASKS_BENCHMARK


def _units(model: ModelResults, task: str, conv: Convention, shown: float):
    """The task's verified units under the convention's selection, or why there are none."""
    from qzhou_eval.significance.recorded_units import RecordedUnits, recorded_units

    found = recorded_units(model.tasks[task].path)
    if not isinstance(found, RecordedUnits):
        return found
    selection = conv.tasks[task]
    try:
        units = found.units.select(selection.splits, selection.subsets)
    except ValueError as exc:
        return str(exc)
    if not abs(100.0 * units.point() - shown) <= _SCORE_MATCH:
        return "its per-sample units do not rebuild the score shown"
    return RecordedUnits(units, found.data_fingerprint)


@dataclass
class PairedTable:
    """NEW - BASE per common task (points), with intervals, p, q and verdicts where both have per-sample data."""

    rows: pd.DataFrame  # index task; columns base, new, delta, ci_low, ci_high, p, q, verdict, units, note
    tests: dict  # task -> significance.paired.PairedTest, for the suite mean's interval

    COLUMNS = ("base", "new", "delta", "ci_low", "ci_high", "p", "q", "verdict", "units", "note")


def paired_table(base: ModelResults, new: ModelResults, conv: Convention, settings: Settings) -> PairedTable:
    """Per task both score: the interval and p-value where both have per-sample data over the same data, else a
    note; q-values by Benjamini-Hochberg over the tested tasks; worst delta first."""
    from qzhou_eval.errors import NotPaired
    from qzhou_eval.results.aggregate import task_score
    from qzhou_eval.significance.paired import benjamini_hochberg, paired_test
    from qzhou_eval.significance.recorded_units import RecordedUnits

    records = []
    for task, selection in conv.tasks.items():
        files = base.tasks.get(task), new.tasks.get(task)
        scores = [task_score(f, selection) if f else None for f in files]
        if None not in scores:
            records.append({"task": task, "base": scores[0], "new": scores[1], "delta": scores[1] - scores[0]})
    out = pd.DataFrame.from_records(records, columns=["task", "base", "new", "delta"]).set_index("task")
    for column in ("ci_low", "ci_high", "p", "q"):
        out[column] = math.nan
    out["units"], out["note"] = 0, ""
    tests = {}
    for task, row in out.iterrows():
        sides = [_units(base, task, conv, row["base"]), _units(new, task, conv, row["new"])]
        if not all(isinstance(s, RecordedUnits) for s in sides):
            out.at[task, "note"] = "; ".join(
                f"{who}: {s}" for who, s in zip(("BASE", "NEW"), sides) if not isinstance(s, RecordedUnits)
            )
            continue
        if sides[0].data_fingerprint != sides[1].data_fingerprint:
            out.at[task, "note"] = "the runs evaluated different data (fingerprints differ): not paired"
            continue
        try:
            test = paired_test(sides[0].units, sides[1].units, resamples=settings.resamples, seed=settings.seed)
        except NotPaired as exc:
            out.at[task, "note"] = str(exc)
            continue
        out.loc[task, ["ci_low", "ci_high", "p"]] = [100 * test.ci_low, 100 * test.ci_high, test.p_value]
        out.at[task, "units"] = test.units
        unit = test.unit if test.units == 1 else ("queries" if test.unit == "query" else f"{test.unit}s")
        out.at[task, "note"] = f"{test.units} {unit}" + (", exact test" if test.exact else "")
        tests[task] = test
    if tests:
        out.loc[list(tests), "q"] = benjamini_hochberg(out.loc[list(tests), "p"].to_numpy())
    out["verdict"] = [_verdict(row, settings) for _, row in out.iterrows()]
    return PairedTable(out.sort_values("delta")[list(PairedTable.COLUMNS)], tests)


def _verdict(row: pd.Series, settings: Settings) -> str:
    if math.isnan(row["q"]):
        return POINT_OK if row["delta"] >= -settings.max_task_drop else POINT_DROP
    if row["q"] > settings.alpha or row["delta"] == 0:
        return NOISE
    return GAIN if row["delta"] > 0 else DROP


def compare_runs(
    base: str | Path,
    new: str | Path,
    *,
    benchmark: str | None = None,
    convention: str = "leaderboard-2025-08",
    settings: Settings | None = None,
    **thresholds,
) -> Comparison:
    """NEW - BASE in points (x100), with per-task verdicts; ``thresholds`` are :class:`Settings` fields.

    Flagged (exit 1): a significant drop beyond ``min_effect``; a point drop beyond ``max_task_drop``
    for a task without per-sample data; the mean's drop beyond ``max_mean_drop`` when not every
    task has per-sample data, else a mean whose whole interval lies below ``-min_effect``; with
    ``require_all``, a task BASE has and NEW lacks (otherwise a partial NEW is compared on what it has).
    """
    settings = settings or Settings(**thresholds)
    base_model, new_model = _single_model(base, "BASE"), _single_model(new, "NEW")
    benchmark = benchmark or comparison_benchmark(base_model, new_model)
    if benchmark == TASKS_BENCHMARK:
        conv = files_convention({**new_model.tasks, **base_model.tasks})
    else:
        conv = load_convention(convention, benchmark)
    table = paired_table(base_model, new_model, conv, settings)
    if table.rows.empty:
        have = [sorted(t for t in m.tasks if t in conv.tasks)[:5] for m in (base_model, new_model)]
        raise InvalidOptionError(
            f"nothing to compare: no {benchmark} task has a score in both BASE ({have[0]}) and NEW ({have[1]}); "
            "point both at runs of the same suite"
        )
    scored = [{t for t, sel in conv.tasks.items() if t in m.tasks and task_score(m.tasks[t], sel) is not None}
              for m in (base_model, new_model)]  # fmt: skip
    result = Comparison(
        benchmark,
        conv.name,
        settings,
        table.rows,
        float(table.rows["base"].mean()),
        float(table.rows["new"].mean()),
        only_base=sorted(scored[0] - scored[1]),
        only_new=sorted(scored[1] - scored[0]),
    )
    tests = table.tests
    _flag(result, tests, settings)
    return result


def _flag(result: Comparison, tests: dict, settings: Settings) -> None:
    from qzhou_eval.significance.paired import suite_mean

    rows = result.rows
    for task, row in rows.iterrows():
        if row["verdict"] == DROP and -row["delta"] > settings.min_effect:
            result.flags.append(
                f"{task}: {row['delta']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}], q={row['q']:.3g} "
                f"(significant at FDR {settings.alpha}, beyond --min-effect {settings.min_effect})"
            )
        elif row["verdict"] == POINT_DROP:
            result.flags.append(
                f"{task}: {row['delta']:+.2f} (< -{settings.max_task_drop}; point delta, no per-sample data)"
            )
    if len(tests) == len(rows):
        mean = suite_mean(list(tests.values()))
        result.mean_ci = (100 * mean.ci_low, 100 * mean.ci_high)
        if result.mean_ci[1] < -settings.min_effect:
            result.flags.append(
                f"mean over {len(rows)} tasks: {result.mean_delta:+.2f} [{result.mean_ci[0]:+.2f}, "
                f"{result.mean_ci[1]:+.2f}] (whole interval below -{settings.min_effect})"
            )
    else:
        result.mean_note = (
            f"{len(rows) - len(tests)} of {len(rows)} tasks lack per-sample data: no interval for the mean; "
            f"gate: point drop beyond {settings.max_mean_drop}"
        )
        if not result.mean_delta >= -settings.max_mean_drop:
            result.flags.append(
                f"mean over {len(rows)} common tasks: {result.mean_delta:+.2f} (< -{settings.max_mean_drop})"
            )
    if settings.require_all and result.only_base:
        result.flags.append(f"{len(result.only_base)} task(s) of BASE missing in NEW (--require-all)")


def render_comparison(cmp: Comparison) -> str:
    s = cmp.settings
    lines = [
        f"{cmp.benchmark}, convention {cmp.convention}: NEW - BASE in points, worst first; 95% paired bootstrap "
        f"interval ({s.resamples} resamples, seed {s.seed}), randomisation p, Benjamini-Hochberg q "
        f"(FDR {s.alpha})",
        "",
    ]
    lines.append(formatted(cmp.rows).reset_index().to_markdown(index=False, tablefmt="github", disable_numparse=True))
    mean_ci = f" {_interval(cmp.mean_ci)}" if cmp.mean_ci else ""
    lines += [
        "",
        f"mean over {len(cmp.rows)} common tasks: base {cmp.mean_base:.2f}, new {cmp.mean_new:.2f}, "
        f"delta {cmp.mean_delta:+.2f}{mean_ci}" + (f" ({cmp.mean_note})" if cmp.mean_note else ""),
    ]
    if cmp.only_base:
        verdict = (
            "a flag (--require-all)" if s.require_all else "compared on the common tasks only; --require-all fails"
        )
        lines.append(f"NEW is partial: {len(cmp.only_base)} task(s) of BASE missing ({verdict}): {cmp.only_base}")
    if cmp.only_new:
        lines.append(f"tasks only in NEW: {cmp.only_new}")
    lines.append(f"{len(cmp.flags)} flag(s)" + (":\n  " + "\n  ".join(cmp.flags) if cmp.flags else ""))
    return "\n".join(lines) + "\n"


def formatted(rows: pd.DataFrame) -> pd.DataFrame:
    """A paired table as every format prints it (compare, the markdown and HTML reports): the same strings."""
    table = rows.copy()
    table.index.name = "task"
    table["interval"] = [
        "" if math.isnan(lo) else _interval((lo, hi)) for lo, hi in zip(table["ci_low"], table["ci_high"])
    ]
    for column in ("base", "new"):
        table[column] = [f"{v:.2f}" for v in table[column]]
    table["delta"] = [f"{v:+.2f}" for v in table["delta"]]
    for column in ("p", "q"):
        table[column] = ["" if math.isnan(v) else f"{v:.2g}" for v in table[column]]
    return table[["base", "new", "delta", "interval", "p", "q", "verdict", "note"]]


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:+.2f}, {bounds[1]:+.2f}]"
