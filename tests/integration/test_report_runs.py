"""Reporting on a fresh runner run, and submitting it through mteb's own result classes."""

import mteb
import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.report.submission import SubmissionError, submit


def test_report_on_a_fresh_run(finished_run, shared_dir, tmp_path, capsys):
    out, code, _ = finished_run
    assert code == 0
    chart = tmp_path / "chart.png"
    assert (
        main(
            [
                "report",
                str(out),
                "--benchmark",
                "MTEB(eng, v2)",
                "--baselines",
                str(shared_dir / "leaderboard-results" / "results"),
                "--models",
                "sentence-transformers/all-MiniLM-L6-v2,BAAI/bge-small-en-v1.5",
                "--table",
                "tasks",
                "--reference",
                "sentence-transformers/all-MiniLM-L6-v2 (leaderboard)",
                "--chart",
                str(chart),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("| sentence-transformers/all-MiniLM-L6-v2 "))
    assert "| 1/41 " in row and "| 82.03 " in row
    assert chart.stat().st_size > 10_000 and chart.read_bytes()[:4] == b"\x89PNG"


def test_submit_round_trip_and_refusals(finished_run, shared_dir, tmp_path):
    out, _, _ = finished_run
    with pytest.raises(SubmissionError, match=r"lacks 40 task\(s\) of MTEB\(eng, v2\)"):
        submit(out, tmp_path / "sub")
    target = submit(out, tmp_path / "sub", allow_partial=True)
    assert (target / "STSBenchmark.json").is_file() and (target / "model_meta.json").is_file()
    assert target.parts[-3:-1] == ("results", "sentence-transformers__all-MiniLM-L6-v2")
    with pytest.raises(SubmissionError, match="already exist"):
        submit(out, tmp_path / "sub", allow_partial=True)
    # the printed next steps are commands mteb's own CLI accepts, pointing at what was written
    from mteb.cli.build_cli import build_cli

    from qzhou_eval.report.submission import next_commands

    for command in next_commands(tmp_path / "sub", "sentence-transformers/all-MiniLM-L6-v2")[:2]:
        args = build_cli().parse_args(command.split()[1:])
        assert args.models == ["sentence-transformers/all-MiniLM-L6-v2"]
        loaded = mteb.ResultCache(args.output_folder).load_results(models=args.models, include_remote=False)
        assert {tr.task_name for mr in loaded.model_results for tr in mr.task_results} == {"STSBenchmark"}
    leaderboard = shared_dir / "leaderboard-results" / "results" / "sentence-transformers__all-MiniLM-L6-v2"
    with pytest.raises(SubmissionError, match="mixed mteb versions"):
        submit(leaderboard, tmp_path / "sub2", allow_partial=True)


def test_mteb_reads_a_run_folder_as_it_is_and_agrees_with_the_report(finished_run):
    """mteb.ResultCache(<output_dir>) loads a fresh run; its benchmark means are the report's partial means."""
    import mteb

    from qzhou_eval.report.tables import build_report

    out = finished_run[0]
    loaded = mteb.ResultCache(out).load_results(tasks=mteb.get_benchmark("MTEB(eng, v2)"))
    assert [m.model_name for m in loaded.model_results] == ["sentence-transformers/all-MiniLM-L6-v2"]
    theirs = loaded.get_benchmark_result().iloc[0]
    ours = {m.column: m.mean for m in build_report([out], "MTEB(eng, v2)").partial[theirs["Model"]]}
    for their_column, our_column in (
        ("STS", "STS"),
        ("Mean (Task)", "Mean(Task)"),
        ("Mean (TaskType)", "Mean(TaskType)"),
    ):
        assert 100 * theirs[their_column] == pytest.approx(ours[our_column], abs=1e-6), our_column


def test_a_partial_run_reads_as_partial(finished_run, capsys):
    from qzhou_eval.cli.main import main

    assert main(["report", str(finished_run[0]), "--benchmark", "MTEB(eng, v2)"]) == 0
    out = capsys.readouterr().out
    assert "Partial rows" in out and "| STS            | 82.03   | 1/9" in out
