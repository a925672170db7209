"""Per-sample units rebuild mteb's main score on real tasks and mteb's mock tasks; compare's verdicts and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from minilm_runs import minilm_argv

from qzhou_eval.cli.main import main
from qzhou_eval.significance.from_mteb import task_units


@pytest.fixture(scope="module")
def minilm_mteb(minilm_path):
    from mteb.models import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    return SentenceTransformerEncoderWrapper(SentenceTransformer(minilm_path, device="cpu"))


def _evaluate_with_units(model, task, tmp_path: Path):
    import mteb

    task.load_data()
    result = mteb.evaluate(model, tasks=[task], cache=None, prediction_folder=tmp_path, show_progress_bar=False)
    task_result = result.task_results[0]
    predictions = json.loads((tmp_path / task.prediction_file_name).read_text())
    units = task_units(task, task_result, predictions)
    task.unload_data()
    return task_result, units


def _assert_rebuilds(task_result, units) -> None:
    entries = {(split, e["hf_subset"]): e["main_score"] for split, es in task_result.scores.items() for e in es}
    for group in units.groups:
        assert abs(group.point() - entries[(group.split, group.subset)]) <= 1e-9
    assert abs(units.point() - task_result.get_score()) <= 1e-9


@pytest.mark.parametrize(  # one real task per evaluator (SICK-R and PAWSX go through STSBenchmark's; test time)
    ("task_name", "rows"),
    [("STSBenchmark", 150), ("Banking77Classification", 400), ("SciFact", 150)],
)
def test_units_rebuild_mteb_main_score_on_the_local_pack(task_name, rows, minilm_mteb, copy_task, tmp_path):
    import mteb

    from qzhou_eval.runs.offline import attach_data_dir

    copy_task(task_name, tmp_path / "data", rows=rows)
    task = mteb.get_task(task_name)
    attach_data_dir([task], tmp_path / "data")
    task_result, units = _evaluate_with_units(minilm_mteb, task, tmp_path / "predictions")
    _assert_rebuilds(task_result, units)
    assert units.size > 50


def _mock(name: str, **metadata):
    from mteb.mocks.mock_tasks import (
        classification,
        clustering,
        pair_classification,
        reranking,
        retrieval,
        sts,
        summarization,
    )

    for module in (classification, clustering, pair_classification, reranking, retrieval, sts, summarization):
        if hasattr(module, name):
            task = getattr(module, name)()
            if metadata:
                task.metadata = task.metadata.model_copy(update=metadata)
            return task
    raise LookupError(name)


@pytest.mark.parametrize(
    ("task_name", "metadata"),
    [
        ("MockClassificationTask", {}),
        ("MockMultilingualClassificationTask", {"main_score": "f1"}),
        ("MockPairClassificationTask", {"main_score": "max_ap"}),
        ("MockMultilingualPairClassificationTask", {"main_score": "max_accuracy"}),
        ("MockSTSTask", {}),
        ("MockMultilingualSTSTask", {"main_score": "cosine_pearson"}),
        ("MockRetrievalTask", {}),
        ("MockMultilingualRetrievalTask", {"main_score": "mrr_at_10"}),
        ("MockRerankingTask", {}),
        ("MockMultilingualRerankingTask", {}),
        ("LegacyMockClusteringFastTask", {}),
        ("MockMultilingualClusteringFastTask", {}),
        ("MockClusteringTask", {}),
        ("MockSummarizationTask", {}),
        ("MockMultilingualSummarizationTask", {}),
    ],
)
def test_units_rebuild_mteb_main_score_on_mock_tasks(task_name, metadata, minilm_mteb, tmp_path):
    task_result, units = _evaluate_with_units(minilm_mteb, _mock(task_name, **metadata), tmp_path)
    _assert_rebuilds(task_result, units)


def test_units_rebuild_a_max_over_subqueries_score(minilm_mteb, tmp_path):
    """MindSmallReranking's main score: sub-queries merged, each document at its best score (mteb's own rule)."""
    from mteb._evaluators.retrieval_metrics import max_over_subqueries

    task = _mock("MockMultilingualRerankingTask", main_score="max_over_subqueries_map_at_1000")
    task.task_specific_scores = lambda scores, qrels, results, hf_split, hf_subset: max_over_subqueries(
        qrels, results, task.k_values
    )
    task_result, units = _evaluate_with_units(minilm_mteb, task, tmp_path)
    _assert_rebuilds(task_result, units)


def _run(minilm_path, data: Path, out: Path, *extra: str) -> None:
    assert main(["run", *minilm_argv(minilm_path, data, out, *extra)]) == 0


SHORT = "test/minilm-max-length-12"


@pytest.fixture(scope="module")
def small_sts(copy_task, tmp_path_factory) -> Path:
    """The first 500 pairs of STSBenchmark's test split: enough pairs for a real interval, quick to encode."""
    data = tmp_path_factory.mktemp("sts500")
    copy_task("STSBenchmark", data, rows=500)
    return data


@pytest.fixture(scope="module")
def base_run(minilm_path, small_sts, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base")
    _run(minilm_path, small_sts, out)
    return out


@pytest.fixture(scope="module")
def short_run(minilm_path, small_sts, tmp_path_factory) -> Path:
    """The same model reading only 12 tokens of each text: a real degradation, with per-sample evidence."""
    out = tmp_path_factory.mktemp("short")
    _run(minilm_path, small_sts, out, "--max_length", "12", "--model_name", SHORT)
    return out


def test_compare_verdicts_and_exit_codes(base_run, short_run, minilm_path, small_sts, tmp_path, capsys):
    base = base_run
    _run(minilm_path, small_sts, tmp_path / "batching", "--batch_size", "8")
    shutil.copytree(short_run, tmp_path / "short")
    capsys.readouterr()

    assert main(["compare", str(base), str(tmp_path / "batching"), "--resamples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "within noise" in out and "500 pairs" in out and "0 flag(s)" in out

    assert main(["compare", str(base), str(tmp_path / "short"), "--resamples", "2000"]) == 1
    table = capsys.readouterr().out
    assert "significant drop" in table and "STSBenchmark: -" in table
    assert main(["compare", str(base), str(tmp_path / "short"), "--resamples", "2000", "--format", "json"]) == 1
    record = json.loads(capsys.readouterr().out)
    row = record["tasks"]["STSBenchmark"]
    assert row["verdict"] == "significant drop" and row["ci_high"] < 0 < -row["delta"]
    assert f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" in table, "the table and the JSON give the same interval"
    # a drop the user tolerates: significant, but not beyond --min-effect
    assert main(["compare", str(base), str(tmp_path / "short"), "--min-effect", str(-row["delta"] + 1)]) == 0
    capsys.readouterr()

    # without per-sample data the verdict is a point delta, said so; no interval is made up
    shutil.rmtree(tmp_path / "short" / ".qzhou" / "evidence")
    assert main(["compare", str(base), str(tmp_path / "short"), "--format", "json"]) == (
        1 if row["delta"] < -1.0 else 0
    )
    fallback = json.loads(capsys.readouterr().out)["tasks"]["STSBenchmark"]
    assert fallback["ci_low"] is None and fallback["verdict"].endswith("(point delta)")
    assert "no per-sample data" in fallback["note"]

    for bad in (["--alpha", "1.5"], ["--resamples", "0"], ["--min-effect", "-1"]):
        with pytest.raises(SystemExit) as stop:  # argparse refuses it, with the one-line error and exit 2
            main(["compare", str(base), str(tmp_path / "batching"), *bad])
        assert stop.value.code == 2
    assert main(["compare", str(base), str(tmp_path / "nowhere")]) == 2


def test_reports_show_compares_intervals_in_markdown_html_and_a_real_browser(base_run, short_run, tmp_path, capsys):
    """The report against a reference prints compare's strings; Chromium's DOM of the HTML page holds the same."""
    import subprocess

    from qzhou_eval.report.html import render_html
    from qzhou_eval.report.tables import build_report, render

    base = base_run
    assert main(["compare", str(base), str(short_run), "--format", "json"]) == 1
    row = json.loads(capsys.readouterr().out)["tasks"]["STSBenchmark"]
    expected = ["STSBenchmark", f"{row['base']:.2f}", f"{row['new']:.2f}", f"{row['delta']:+.2f}",
                f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]", f"{row['p']:.2g}", f"{row['q']:.2g}", row["verdict"],
                row["note"]]  # fmt: skip
    report = build_report([base, short_run], "MTEB(eng, v2)", reference="sentence-transformers/all-MiniLM-L6-v2")
    markdown = render(report, "markdown", "tasks")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("|")]
    assert expected in rows
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    assert '<img alt="intervals"' in page.read_text()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); the markdown was checked above")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
    run = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    if run.returncode != 0 or "<table" not in run.stdout:
        pytest.skip(f"chromium is installed but could not render here: {run.stderr.strip()[-300:]}")
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell, self.paired = [], None, False

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.paired = "paired" in (dict(attrs).get("class") or "")
            elif tag == "tr" and self.paired:
                self.rows.append([])
            elif tag == "td" and self.paired:
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "td" and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parsed = Rows()
    parsed.feed(run.stdout)
    assert expected in parsed.rows, parsed.rows
