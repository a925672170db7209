"""Leaderboard arithmetic on the CC0 snapshot: published rows, partial models, revisions, Borda, outputs."""

import json
import math
import shutil

import pandas as pd
import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.errors import InvalidOptionError, ResultFileError
from qzhou_eval.report.tables import build_report, render
from qzhou_eval.results.aggregate import borda_points, borda_rank
from qzhou_eval.results.conventions import load_convention

ENG, CMN = "MTEB(eng, v2)", "MTEB(cmn, v1)"
COLS_ENG = [
    "Classification",
    "Clustering",
    "PairClassification",
    "Reranking",
    "Retrieval",
    "STS",
    "Summarization",
    "Mean(Task)",
    "Mean(TaskType)",
]
COLS_CMN = [
    "Classification",
    "Clustering",
    "PairClassification",
    "Reranking",
    "Retrieval",
    "STS",
    "Mean(Task)",
    "Mean(TaskType)",
]
PUBLISHED = [
    (
        ENG,
        "Salesforce/SFR-Embedding-Mistral",
        COLS_ENG,
        [80.47, 54.93, 88.59, 50.15, 59.33, 84.77, 36.32, 69.31, 64.94],
    ),
    (ENG, "nvidia/NV-Embed-v2", COLS_ENG, [87.19, 47.66, 88.69, 49.61, 62.84, 83.82, 35.21, 69.81, 65.00]),
    (CMN, "sensenova/piccolo-large-zh-v2", COLS_CMN, [76.42, 62.16, 85.22, 70.00, 74.36, 63.46, 70.86, 71.94]),
]


@pytest.fixture(scope="module")
def baselines(shared_dir):
    return shared_dir / "leaderboard-results" / "results"


@pytest.fixture(scope="module")
def eng_report(baselines):
    return build_report([], ENG, baselines=baselines, models=["all"])


@pytest.fixture(scope="module")
def cmn_report(baselines):
    return build_report([], CMN, baselines=baselines)


@pytest.mark.parametrize("suite,model,columns,expected", PUBLISHED, ids=[p[1] for p in PUBLISHED])
def test_published_task_type_rows(suite, model, columns, expected, eng_report, cmn_report):
    row = (eng_report if suite == ENG else cmn_report).task_types.loc[model, columns]
    for column, want in zip(columns, expected):
        assert row[column] == pytest.approx(want, abs=0.02), f"{model} {column}: {row[column]:.3f} vs published {want}"


def test_partial_models_get_coverage_and_blank_means(cmn_report):
    row = cmn_report.task_types.loc["BAAI/bge-small-zh-v1.5"]
    assert row["tasks"] == "27/31"
    assert math.isnan(row["Mean(Task)"]) and math.isnan(row["Mean(TaskType)"]) and math.isnan(row["Reranking"])
    assert row["Classification"] == row["Classification"], "complete types keep their mean"
    assert cmn_report.task_types.loc["annamodels/LGAI-Embedding-Preview", "tasks"] == "0/31"


def test_revision_choice_is_reported_and_deterministic(eng_report, baselines):
    assert eng_report.revisions["Salesforce/SFR-Embedding-Mistral"] == {
        "external": 21,
        "938c560d1c236aa563b2dbdf084f28ab28bccb11": 20,
    }
    again = build_report([], ENG, baselines=baselines, models=["Salesforce/SFR-Embedding-Mistral"])
    assert again.revisions == {
        "Salesforce/SFR-Embedding-Mistral": eng_report.revisions["Salesforce/SFR-Embedding-Mistral"]
    }


def test_borda_points_ties_missing_tasks_and_rank():
    """Points pin the rules: n counts every model, ties share the average rank, a missing task is 0 points."""
    scores = pd.DataFrame(
        {"t1": [3.0, 3.0, 1.0, 0.5], "t2": [1.0, 2.0, math.nan, 0.1], "t3": [2.0, 1.0, 3.0, 0.0]},
        index=["a", "b", "c", "d"],
    )
    # t1: a, b tie for ranks 1-2 -> 1.5 each -> 4 - 1.5 = 2.5; c 4 - 3 = 1; d 0.  (min ties: 3; dense: c 2)
    # t2: b 3, a 2, d 1 (n is 4 though only 3 ran it), c missing -> 0
    # t3: c 3, a 2, b 1, d 0
    assert borda_points(scores).to_dict() == {"a": 6.5, "b": 6.5, "c": 4.0, "d": 1.0}
    assert borda_rank(scores).to_dict() == {"a": 1, "b": 1, "c": 3, "d": 4}


def test_borda_matches_mtebs_own_expression():
    """mteb's leaderboard rank (its polars expression) on random score tables with ties and gaps."""
    import numpy as np
    import polars as pl
    from mteb.benchmarks._create_table import _get_borda_rank

    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 6, size=(7, 5)).astype(float)  # few distinct values: many ties
        values[rng.random(values.shape) < 0.2] = np.nan
        frame = pd.DataFrame(values, index=[f"m{i}" for i in range(7)], columns=[f"t{j}" for j in range(5)])
        theirs = pl.from_pandas(frame.reset_index(names="model")).select(_get_borda_rank(list(frame.columns)))
        assert borda_rank(frame).tolist() == theirs.to_series().to_list()


def test_conventions_differ_where_spec_says(baselines):
    leaderboard = load_convention("leaderboard-2025-08", CMN)
    current = load_convention("mteb", CMN)
    # mteb's MTEB(cmn, v1) task objects score ATEC on test (as published) but MultilingualSentiment on both splits
    assert leaderboard.tasks["ATEC"].splits == current.tasks["ATEC"].splits == ("test",)
    assert leaderboard.tasks["MultilingualSentiment"].splits == ("validation",)
    assert current.tasks["MultilingualSentiment"].splits == ("validation", "test")
    assert load_convention("leaderboard-2025-08", ENG).tasks["STS17"].subsets == ("en-en",)
    with pytest.raises(InvalidOptionError, match="'paper' is not a valid convention, must be one of"):
        load_convention("paper", ENG)
    with pytest.raises(InvalidOptionError, match="does not know the benchmark 'MTEB\\(xyz, v9\\)'"):
        load_convention("mteb", "MTEB(xyz, v9)")


def test_render_formats_state_the_convention(eng_report):
    md = render(eng_report, "markdown", "task-types")
    assert "convention `leaderboard-2025-08`" in md
    row = next(line for line in md.splitlines() if line.startswith("| Salesforce/SFR-Embedding-Mistral "))
    assert "| 41/41 " in row and "| 69.31 " in row and "| 64.94 " in row
    csv = render(eng_report, "csv", "tasks").splitlines()
    assert csv[0].startswith("model,convention,tasks,ArguAna") and ",leaderboard-2025-08," in csv[1]
    data = json.loads(render(eng_report, "json", "task-types"))
    assert data["convention"] == "leaderboard-2025-08" and {r["model"] for r in data["rows"]} >= {"nvidia/NV-Embed-v2"}


def test_bad_inputs(baselines, tmp_path):
    with pytest.raises(
        ResultFileError, match=r"'Salesforce/SFR-Embedding' \(closest: \['Salesforce/SFR-Embedding-Mistral'"
    ):
        build_report([], ENG, baselines=baselines, models=["Salesforce/SFR-Embedding"])
    with pytest.raises(ResultFileError, match="not in mteb's results layout"):
        build_report([tmp_path], ENG)
    broken = tmp_path / "org__m" / "rev1"
    broken.mkdir(parents=True)
    (broken / "STS12.json").write_text('{"task_name": "STS12", "scores": {"test": [{"main_score"')
    with pytest.raises(ResultFileError, match=r"STS12.json: not valid UTF-8 JSON .* truncated or corrupt"):
        build_report([tmp_path], ENG)
    (broken / "STS12.json").write_text('{"task_name": "STS12"}')
    with pytest.raises(ResultFileError, match="STS12.json: has no 'scores' mapping"):
        build_report([tmp_path], ENG)


def test_cli_report_out_refuses_overwrite(baselines, tmp_path, capsys):
    out = tmp_path / "t.md"
    args = [
        "report",
        "--benchmark",
        CMN,
        "--baselines",
        str(baselines),
        "--models",
        "sensenova/piccolo-large-zh-v2",
        "--out",
        str(out),
    ]
    assert main(args) == 0 and "70.86" in out.read_text()
    assert main(args) == 2 and "exists; pass --force" in capsys.readouterr().err
    assert main(["report", "--benchmark", CMN, "--convention", "nope", "--baselines", str(baselines)]) == 2


def _copy_model(src, dst, shift=None):
    shutil.copytree(src, dst)
    if shift:
        task, delta = shift
        path = next(dst.glob(f"*/{task}.json"))
        data = json.loads(path.read_text())
        for entries in data["scores"].values():
            for entry in entries:
                entry["main_score"] += delta
        path.write_text(json.dumps(data))


def test_compare_exit_codes(baselines, tmp_path, capsys):
    src = baselines / "Qwen__Qwen3-Embedding-0.6B"
    _copy_model(src, tmp_path / "base" / src.name)
    _copy_model(src, tmp_path / "same" / src.name)
    _copy_model(src, tmp_path / "worse" / src.name, shift=("STSB", -0.02))
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "same"), "--benchmark", CMN]) == 0
    assert "0 flag(s)" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "worse"), "--benchmark", CMN]) == 1
    out = capsys.readouterr().out
    assert "STSB: -2.00 (< -1.0; point delta, no per-sample data)" in out and out.index("| STSB") < out.index(
        "| AFQMC"
    ), "worst first"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "base"),
                str(tmp_path / "worse"),
                "--max-task-drop",
                "2.5",
                "--max-mean-drop",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    next((tmp_path / "same").glob("*/*/ATEC.json")).unlink()
    # a partial NEW is compared on what it has, the missing task listed once; --require-all makes it a failure
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "same"), "--benchmark", CMN]) == 0
    out = capsys.readouterr().out
    assert out.count("ATEC") == 1 and "NEW is partial: 1 task(s) of BASE missing" in out
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "same"), "--benchmark", CMN, "--require-all"]) == 1
    assert "1 task(s) of BASE missing in NEW (--require-all)" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "nowhere")]) == 2
