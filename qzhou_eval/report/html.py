"""``report --format html``: one self-contained page (no network to open it) for people to look at.

It holds the task-type and task tables (sortable by clicking a header), the chart as an inline PNG,
per-task deltas against a reference model or a previous run with drops highlighted, and each run's
manifest (model, options, versions). Every number is the one the markdown report prints: both read the
same :class:`~qzhou_eval.report.tables.Report` and format cells with the same function.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

import pandas as pd

from qzhou_eval.report.tables import (
    Report,
    convention_notes,
    find_manifests,
    format_cell,
    paired_notes,
    partial_note,
    readability_notes,
    revisions_note,
)

DROP = -1.0  # points: a delta at or below this is a regression (the compare gate's default per-task drop)

_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const dir = th.dataset.dir === "desc" ? 1 : -1; th.dataset.dir = dir === 1 ? "asc" : "desc";
  const key = r => { const t = r.cells[col].textContent.trim(); const v = parseFloat(t);
                     return t === "" ? -Infinity : (isNaN(v) ? t : v); };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    return (x > y ? 1 : x < y ? -1 : 0) * dir; }).forEach(r => body.appendChild(r));
}));
"""
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222} table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{cursor:pointer;background:#f3f3f3}
td:first-child,th:first-child{text-align:left} tr.run td:first-child{font-weight:bold}
td.drop,tr.drop td{background:#f8c9c4} td.gain,tr.gain td{background:#d4edd4} pre{background:#f7f7f7;padding:1em;overflow:auto}
.note{color:#555;font-size:90%} .scroll{max-width:100%;overflow-x:auto} img{max-width:100%;height:auto}
"""


def run_manifests(run_dirs: list[str | Path], benchmark: str) -> dict[Path, dict]:
    """The runs' manifests for ``benchmark`` (:func:`~qzhou_eval.report.tables.find_manifests`); one page is one
    benchmark, so a run whose manifests are all of another benchmark is refused (InvalidOptionError)."""
    return find_manifests(run_dirs, benchmark, strict=True)


def _table(frame: pd.DataFrame, runs: set[str], caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["model", *frame.columns])
    rows = []
    for name, row in frame.iterrows():
        cells = [f"<td>{html.escape(str(name))}</td>"]
        for column, value in row.items():
            css = ""
            if str(column).startswith("Δ") and isinstance(value, float) and value == value:
                shown = round(value, 2)  # the colour follows the number printed: a 0.00 is neither
                css = ' class="drop"' if shown <= DROP else ' class="gain"' if shown > 0 else ""
            cells.append(f"<td{css}>{html.escape(format_cell(value))}</td>")
        rows.append(f'<tr class="{"run" if name in runs else "baseline"}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="sortable"><caption>{html.escape(caption)}</caption><thead><tr>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _chart(report: Report, draw=None, alt: str = "chart") -> str:
    from qzhou_eval.report.plots import task_type_chart

    draw = draw or (lambda path: task_type_chart(report, path))
    with tempfile.TemporaryDirectory() as tmp:
        png = draw(Path(tmp) / "chart.png").read_bytes()
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _paired_section(report: Report) -> list[str]:
    """Against the reference: compare's table for each model (the same strings), and the Δ chart with error bars."""
    from qzhou_eval.report.plots import delta_chart

    sections = paired_notes(report)
    if not sections:
        return []
    parts = [f"<h2>Against {html.escape(str(report.reference))}</h2>"]
    for model, table, note in sections:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["task", *table.columns])
        rows = []
        for task, row in table.iterrows():
            css = (
                ' class="drop"'
                if row["verdict"].startswith(("significant drop", "drop"))
                else (' class="gain"' if row["verdict"] == "significant gain" else "")
            )
            cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in row.to_list())
            rows.append(
                f'<tr data-model="{html.escape(model)}" data-task="{html.escape(str(task))}"{css}>'
                f"<td>{html.escape(str(task))}</td>{cells}</tr>"
            )
        parts.append(
            f'<p class="note">{html.escape(note)}.</p><div class="scroll"><table class="sortable paired"><thead><tr>'
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    parts.append(_chart(report, lambda path: delta_chart(report.paired, str(report.reference), path), "intervals"))
    return parts


def render_html(report: Report, manifests: dict[Path, dict] | None = None) -> str:
    """The page as one string; ``manifests`` as :func:`run_manifests` returns them."""
    manifests = manifests or {}
    runs = {m for m, src in report.sources.items() if src.startswith("run")}
    title = f"{report.benchmark} — convention {report.convention.name}"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(report.convention.description.rstrip("."))}. Click a column header to sort. '
        f"Δ cells at or below {DROP:+.1f} points are drops.</p>",
        *(f'<p class="note">{html.escape(note)}</p>' for note in convention_notes(report) if note),
        *(f'<p class="note warn">{html.escape(note)}</p>' for note in readability_notes(report)),
        "<h2>Task types</h2>",
        _table(report.task_types, runs, "task-types"),
        *_partial_section(report),
        _chart(report),
        "<h2>Tasks</h2>",
        _table(report.tasks, runs, "tasks"),
        *_paired_section(report),
        "<h2>Runs</h2>",
    ]
    for path, manifest in manifests.items():
        record = manifest.as_record()
        shown = {k: record.get(k) for k in ("benchmark", "model", "inputs", "backend", "device", "dtype", "versions")}
        parts.append(f"<h3>{html.escape(path.name)}</h3><pre>{html.escape(json.dumps(shown, indent=2))}</pre>")
    parts += [
        f'<p class="note">{html.escape(revisions_note(report))}</p>',
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _partial_section(report: Report) -> list[str]:
    """The partial rows' means over the tasks present, under the table that leaves them blank."""
    partial = partial_note(report)
    if partial is None:
        return []
    note, table = partial
    return [f'<p class="note">{html.escape(note)}:</p><div class="scroll">{table.to_html(index=False)}</div>']
