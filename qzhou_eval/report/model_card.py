"""``card RUN``: a Hugging Face model card carrying the run's MTEB results, merged into an existing README.

The metadata is the ``model-index`` block the Hub renders as evaluation results: one entry per task, split
and subset, with the task's main metric, built from the task files as mteb reads them (``TaskResult``) and
written through ``huggingface_hub``'s own ``ModelCardData``. An existing card keeps everything else: its
other metadata keys, other models' ``model-index`` entries, and its text; the results section between
qzhou-eval's markers is replaced on every run, never duplicated. A malformed metadata header is an error
naming its line, and the file is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from qzhou_eval._atomic import atomic_write_text
from qzhou_eval.benchmarks import SUITES, bundled_task_names
from qzhou_eval.errors import CardError
from qzhou_eval.results.load import ModelResults
from qzhou_eval.results.runs import load_run_dir

SECTION_START = "<!-- qzhou-eval:mteb-results:start -->"
SECTION_END = "<!-- qzhou-eval:mteb-results:end -->"


@dataclass(frozen=True)
class Card:
    """A card split into its metadata and its markdown text."""

    metadata: dict
    body: str


@dataclass(frozen=True)
class CardSummary:
    path: Path
    model: str
    entries: int  # model-index results written
    benchmarks: tuple[str, ...]  # suites with a results table in the text


def read_card(path: Path) -> Card:
    """Parse ``---``-fenced YAML metadata and the text after it.

    Raises:
        CardError: an unterminated header, YAML that does not parse (with its line), or a non-mapping header.
    """
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return Card({}, text)
    lines = text.splitlines(keepends=True)
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") == "---"), None)
    if end is None:
        raise CardError(f"{path}: the metadata header opened on line 1 is never closed with '---'; fix the file")
    header = "".join(lines[1:end])
    try:
        metadata = yaml.safe_load(header) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark else 2  # +1 for 1-based, +1 for the opening '---'
        raise CardError(
            f"{path}: line {line}: malformed YAML in the metadata header ({exc.problem or exc}); "
            "fix that line (the file was not changed)"
        ) from None
    if not isinstance(metadata, dict):
        raise CardError(f"{path}: the metadata header must be a YAML mapping, got {type(metadata).__name__}")
    return Card(metadata, "".join(lines[end + 1 :]))


def eval_results(model: ModelResults) -> list:
    """``huggingface_hub.EvalResult`` per task / split / subset, from the task files as mteb loads them."""
    import mteb
    from huggingface_hub import EvalResult
    from mteb import TaskResult

    results = []
    for name in sorted(model.tasks):
        task_file = model.tasks[name]
        loaded = TaskResult.from_disk(task_file.path)
        metadata = mteb.get_task(name).metadata
        for split, entries in loaded.scores.items():
            for entry in entries:
                subset = entry.get("hf_subset", "default")
                results.append(
                    EvalResult(
                        task_type=metadata.type,
                        dataset_type=metadata.dataset["path"],
                        dataset_name=f"MTEB {name} ({subset})",
                        dataset_config=subset,
                        dataset_split=split,
                        dataset_revision=metadata.dataset.get("revision"),
                        metric_type=metadata.main_score,
                        metric_value=round(100 * float(entry["main_score"]), 5),
                    )
                )
    return results


def _results_section(run_dir: Path, model: ModelResults, convention: str) -> tuple[str, tuple[str, ...]]:
    from qzhou_eval.report.tables import build_report, render

    parts, suites = [SECTION_START, "## MTEB results", ""], []
    for suite in SUITES:
        if set(model.tasks) & set(bundled_task_names(suite)):
            report = build_report([run_dir], suite, convention=convention)
            parts += [render(report, "markdown", "task-types"), _task_rows(report, model.name)]
            suites.append(suite)
    parts += [
        f"Evaluated with qzhou-eval through mteb; scores follow the `{convention}` convention. The per-task, "
        "per-split entries are in this card's `model-index` metadata.",
        SECTION_END,
    ]
    return "\n".join(parts) + "\n", tuple(suites)


def _task_rows(report, model_name: str) -> str:
    """One row per task the model has (a card reads down, not across 41 columns)."""
    import pandas as pd

    scores = report.tasks.loc[model_name].drop(labels=["tasks", "Mean(Task)"], errors="ignore").dropna()
    frame = pd.DataFrame(
        {
            "task": scores.index,
            "type": [report.convention.task_types[t] for t in scores.index],
            "splits": [", ".join(report.convention.tasks[t].splits) for t in scores.index],
            "score": [f"{v:.2f}" for v in scores.values],
        }
    )
    return frame.to_markdown(index=False, tablefmt="github") + "\n"


def _merged_body(body: str, section: str) -> str:
    if SECTION_START in body and SECTION_END in body:
        head, rest = body.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1]
        return head + section.rstrip("\n") + tail
    return body.rstrip("\n") + ("\n\n" if body.strip() else "\n") + section


def write_card(
    run_dir: str | Path, out: str | Path, *, readme: str | Path | None = None, convention: str = "mteb"
) -> CardSummary:
    """Write ``out``: the card at ``readme`` (or ``out`` itself when it exists) with this run's results merged in.

    Raises:
        CardError: several models in the run, or an unreadable existing card (nothing is written then).
    """
    from huggingface_hub import ModelCard, ModelCardData

    run_dir, out = Path(run_dir), Path(out)
    models = load_run_dir(run_dir)
    if len(models) != 1:
        raise CardError(f"{run_dir} holds {len(models)} models; a card describes one <org__model> folder")
    model = models[0]
    source = Path(readme) if readme else out
    card = read_card(source) if source.is_file() else Card({}, "")
    entries = eval_results(model)
    generated = ModelCardData(model_name=model.name, eval_results=entries).to_dict()
    metadata = dict(card.metadata)
    tags = list(metadata.get("tags") or [])
    metadata["tags"] = tags + ["mteb"] if "mteb" not in tags else tags
    others = [m for m in metadata.get("model-index") or [] if isinstance(m, dict) and m.get("name") != model.name]
    metadata["model-index"] = others + generated["model-index"]
    section, suites = _results_section(run_dir, model, convention)
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    text = f"---\n{header}---\n{_merged_body(card.body, section)}"
    read_back = ModelCard(text).data.eval_results or []  # the Hub's own parser, before anything is written
    if len(read_back) < len(entries):
        raise CardError(f"huggingface_hub read back {len(read_back)} of {len(entries)} results; please report this")
    atomic_write_text(out, text)
    return CardSummary(out, model.name, len(entries), suites)
