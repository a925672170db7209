"""Build the task-type and per-task tables of runs against baselines, and render them."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.results.aggregate import (
    BORDA,
    COVERAGE,
    MEAN_TASK,
    PartialMean,
    add_deltas,
    partial_means,
    score_frame,
    task_type_table,
)
from qzhou_eval.results.conventions import MTEB_CONVENTION, Convention, load_convention
from qzhou_eval.results.load import ModelResults, load_models
from qzhou_eval.results.runs import load_run_dir
from qzhou_eval.run_manifest import MANIFEST_GLOB, RunManifest

logger = logging.getLogger(__name__)

FORMATS = ("markdown", "csv", "json")
TABLES = ("task-types", "tasks")


@dataclass
class Report:
    benchmark: str
    convention: Convention
    task_types: pd.DataFrame
    tasks: pd.DataFrame
    revisions: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    # {model: {task: readability record}} from the runs' manifests (encoder/readability.py)
    readability: dict[str, dict[str, dict]] = field(default_factory=dict)
    reference: str | None = None
    # {model: paired rows against the reference} (report/regression.py): intervals where both have per-sample data
    paired: dict[str, pd.DataFrame] = field(default_factory=dict)
    # {model: means over the tasks present} for models with some but not all tasks (blank in the tables)
    partial: dict[str, list[PartialMean]] = field(default_factory=dict)

    def table(self, which: str) -> pd.DataFrame:
        if which not in TABLES:
            raise InvalidOptionError.for_choice("table", which, TABLES)
        return self.task_types if which == "task-types" else self.tasks


def build_report(
    run_dirs: list[str | Path],
    benchmark: str,
    *,
    baselines: str | Path | None = None,
    models: list[str] | None = None,
    convention: str = "leaderboard-2025-08",
    reference: str | None = None,
) -> Report:
    """Runs first (in the order given), then the chosen baselines; ``models=None`` with baselines = all.

    Raises:
        InvalidOptionError / ResultFileError: unknown convention or benchmark, a folder not in mteb's
        layout, an unreadable task file, or a baseline model that is not there (close names listed).
    """
    conv = load_convention(convention, benchmark)
    task_names = list(conv.tasks)
    entries: list[ModelResults] = []
    sources: dict[str, str] = {}
    for run_dir in run_dirs:
        for model in load_run_dir(run_dir, task_names):
            entries.append(model)
            sources[model.name] = f"run {run_dir}"
    if baselines is not None:
        wanted = None if models in (None, ["all"]) else models
        for model in load_models(Path(baselines), wanted, task_names):
            if model.name in sources:
                model.name = f"{model.name} (leaderboard)"
            entries.append(model)
            sources[model.name] = "baseline"
    if not entries:
        raise InvalidOptionError("nothing to report: give run folders and/or --baselines")
    reference = _reference_row(reference, sources)
    scores = score_frame(entries, conv)
    summary = task_type_table(scores, conv)
    per_task = scores.copy()
    per_task.insert(0, COVERAGE, summary[COVERAGE])
    per_task[MEAN_TASK] = summary[MEAN_TASK]
    if reference:
        summary = add_deltas(summary, reference, [c for c in summary.columns if c not in (COVERAGE, BORDA)])
        per_task = add_deltas(per_task, reference, task_names + [MEAN_TASK])
    readability: dict[str, dict[str, dict]] = {}
    for manifest in find_manifests(run_dirs, benchmark).values():
        model = manifest.model.name
        for task, entry in manifest.tasks.items():
            if model in sources and task in task_names and isinstance(entry.readability, dict):
                readability.setdefault(model, {})[task] = entry.readability
    revisions = {m.name: m.revisions_used() for m in entries}
    paired = _paired_against(reference, entries, conv) if reference else {}
    return Report(
        benchmark,
        conv,
        summary,
        per_task,
        revisions,
        sources,
        readability,
        reference,
        paired,
        partial_means(scores, conv),
    )


def _reference_row(reference: str | None, sources: dict[str, str]) -> str | None:
    """The row ``--reference`` names. A name that a run and a baseline share is the baseline (its row is
    ``<name> (leaderboard)``): a reference is what a run is held against, the published numbers."""
    shared = f"{reference} (leaderboard)"
    if reference and sources.get(reference, "").startswith("run ") and shared in sources:
        logger.info("--reference %s names a run and a baseline; using the baseline row %r", reference, shared)
        return shared
    return reference


def partial_note(report: Report) -> tuple[str, pd.DataFrame] | None:
    """The partial rows' means over the tasks present, as a note and a small table (None: no partial row)."""
    rows = [
        {"model": model, "mean of": m.column, "score": format_cell(m.mean), "tasks": f"{m.present}/{m.total}"}
        for model, means in report.partial.items()
        for m in means
    ]
    if not rows:
        return None
    note = (
        "Partial rows: the table leaves a mean blank unless all its tasks are present. Over the tasks present "
        "only (as mteb's get_benchmark_result computes them; not comparable with complete rows)"
    )
    return note, pd.DataFrame(rows)


def _paired_against(reference: str, entries: list[ModelResults], conv: Convention) -> dict[str, pd.DataFrame]:
    """Each other model against the reference, as ``compare`` would print it (its default settings)."""
    from qzhou_eval.report.regression import Settings, paired_table

    ref = next(m for m in entries if m.name == reference)
    return {m.name: paired_table(ref, m, conv, Settings()).rows for m in entries if m.name != reference}


def paired_notes(report: Report) -> list[tuple[str, pd.DataFrame | None, str]]:
    """(model, formatted paired table or None, note) for each model against the reference."""
    from qzhou_eval.report.regression import formatted

    out = []
    for model, rows in report.paired.items():
        if rows.empty:
            continue
        tested = int(rows["q"].notna().sum())
        note = (
            f"{model} - {report.reference}: 95% paired bootstrap intervals, randomisation p and Benjamini-Hochberg q "
            f"on {tested} of {len(rows)} tasks"
        )
        if tested < len(rows):
            note += (
                "; the others have no per-sample data on one side (leaderboard aggregates, other tools, "
                "--no_predictions runs): point deltas only, no interval"
            )
        out.append((model, formatted(rows), note))
    return out


def find_manifests(run_dirs: list[str | Path], benchmark: str, strict: bool = False) -> dict[Path, RunManifest]:
    """The ``qzhou-run-*.json`` manifests (in each run folder or up to three levels above) for ``benchmark``.

    A folder may hold manifests of both suites (the two runners share an output folder); those of
    ``benchmark`` (or of an ad-hoc ``tasks`` run) are returned.

    Raises:
        InvalidOptionError: with ``strict``, a run whose manifests are all of another benchmark.
    """
    found: dict[Path, RunManifest] = {}
    for run_dir in run_dirs:
        for folder in [Path(run_dir), *list(Path(run_dir).resolve().parents)[:3]]:
            hits = sorted(folder.glob(MANIFEST_GLOB))
            if not hits:
                continue
            records = {p: m for p in hits if (m := RunManifest.read(p)) is not None}
            mine = {p: r for p, r in records.items() if r.benchmark in (benchmark, "tasks")}
            if not mine and strict:
                raise InvalidOptionError(
                    f"an HTML report shows one benchmark, {benchmark}, but the run {run_dir} is of "
                    f"{sorted({str(r.benchmark) for r in records.values()})}; make one page per benchmark "
                    "(--benchmark)"
                )
            found.update(mine)
            break
    return found


def readability_notes(report: Report) -> list[str]:
    """One line per run task the model read poorly (unknown tokens or collapsed texts at 5 % or more)."""
    from qzhou_eval.record.readability_limits import ReadabilityLimits

    warn = ReadabilityLimits().warn
    notes = []
    for model, tasks in report.readability.items():
        for task, rec in sorted(tasks.items()):
            figures = {k: rec.get(k) for k in ("texts_with_unknown_tokens", "unknown_token_pieces", "token_collapse")}
            if not all(isinstance(v, (int, float)) for v in figures.values()):
                continue
            if max(figures["unknown_token_pieces"], figures["token_collapse"]) < warn:
                continue
            notes.append(
                f"Readability — {model}, {task}: {figures['texts_with_unknown_tokens']:.0%} of sampled texts contain "
                f"unknown tokens ({figures['unknown_token_pieces']:.0%} of token pieces); "
                f"{figures['token_collapse']:.0%} of distinct texts collapse to another's tokens."
            )
    return notes


def format_cell(value) -> str:
    """How every report format prints a cell: two decimals, blank for missing."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def revisions_note(report: Report) -> str:
    """Which revision folder each model's task files came from (every format that shows a table says it)."""
    return "Revisions used (tasks per revision folder): " + "; ".join(
        f"{name}: " + ", ".join(f"{rev} ({n})" for rev, n in revs.items())
        for name, revs in report.revisions.items()
        if revs
    )


def convention_notes(report: Report) -> list[str]:
    """Where this table and mteb's own ``Benchmark.get_score`` part ways, and why (``mteb`` convention only)."""
    if report.convention.name != MTEB_CONVENTION:
        return []
    joined = sorted(name for name, revs in report.revisions.items() if len(revs) > 1)
    notes = [
        "Equal to mteb's `Benchmark.get_score` on the same files, except: a task-type mean is shown wherever that "
        "type is complete (mteb blanks every mean when any task is missing)"
    ]
    if joined:
        notes[0] += (
            "; rows that join several revision folders (as the leaderboard does) have means where mteb, scoring "
            f"each revision folder on its own, has none: {', '.join(joined)}"
        )
    return [notes[0] + ".", ""]


def render(report: Report, fmt: str = "markdown", which: str = "task-types") -> str:
    """The chosen table as markdown (GitHub pipes), CSV or JSON; each states its convention."""
    if fmt not in FORMATS:
        raise InvalidOptionError.for_choice("format", fmt, FORMATS)
    frame = report.table(which)
    if fmt == "json":
        rows = [
            {"model": name, **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}}
            for name, row in frame.iterrows()
        ]
        return json.dumps(
            {
                "benchmark": report.benchmark,
                "convention": report.convention.name,
                "convention_description": report.convention.description,
                "table": which,
                "revisions": report.revisions,
                "readability": report.readability,
                "rows": rows,
                "partial": {
                    model: [
                        {"mean_of": m.column, "score": m.mean, "tasks_present": m.present, "tasks": m.total}
                        for m in means
                    ]
                    for model, means in report.partial.items()
                },
                "paired": {
                    model: {
                        task: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                        for task, row in frame.to_dict("index").items()
                    }
                    for model, frame in report.paired.items()
                },
            },
            indent=2,
            ensure_ascii=False,
            default=str,
        )
    shown = frame.map(format_cell)
    shown.index.name = "model"
    if fmt == "csv":
        shown = shown.reset_index()
        shown.insert(1, "convention", report.convention.name)
        return shown.to_csv(index=False)
    lines = [
        f"**{report.benchmark}** — {which} table, convention `{report.convention.name}`: "
        f"{report.convention.description}",
        "",
        shown.reset_index().to_markdown(index=False, tablefmt="github", disable_numparse=True),
        "",
    ]
    lines.extend(convention_notes(report))
    partial = partial_note(report)
    if partial is not None:
        lines += [
            partial[0] + ":",
            "",
            partial[1].to_markdown(index=False, tablefmt="github", disable_numparse=True),
            "",
        ]
    for _, table, note in paired_notes(report):
        lines += [
            note + ":",
            "",
            table.reset_index().to_markdown(index=False, tablefmt="github", disable_numparse=True),
            "",
        ]
    notes = readability_notes(report)
    if notes:
        lines += [*notes, ""]
    lines.append(revisions_note(report))
    return "\n".join(lines) + "\n"
