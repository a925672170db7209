"""Reporting on a fresh runner run, and submitting it through mteb's own result classes."""

import json
from pathlib import Path

import mteb
import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.errors import SubmissionError
from qzhou_eval.report.submission import submit


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
    target, meta = submit(out, tmp_path / "sub", allow_partial=True)
    assert (target / "STSBenchmark.json").is_file() and (target / "model_meta.json").is_file()
    assert target.parts[-3:-1] == ("results", "sentence-transformers__all-MiniLM-L6-v2")
    assert meta.revision_from == "the weights fingerprint" and target.name == meta.revision
    # descriptive fields the run cannot know come from mteb's registry, which knows this model
    written = json.loads((target / "model_meta.json").read_text())
    assert written["license"] == "apache-2.0" and written["release_date"] == "2021-08-30"
    assert written["open_weights"] is True and "training_datasets" in meta.from_registry
    assert set(meta.unknown) <= {"public_training_code", "public_training_data"}
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


LEADERBOARD_COMMIT = "8b3219a92973c328a8e22fadcfa821b5dc75636a"  # the hub commit the leaderboard files MiniLM under


def test_a_submission_lands_in_the_leaderboards_revision_folder(finished_run, shared_dir, tmp_path, caplog):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    with caplog.at_level("WARNING"):
        target, _ = submit(out, tmp_path / "fingerprint", allow_partial=True)
    assert f"registry lists revision {LEADERBOARD_COMMIT}" in caplog.text and "--revision COMMIT" in caplog.text
    target, meta = submit(out, tmp_path / "flag", allow_partial=True, revision=LEADERBOARD_COMMIT)
    published = shared_dir / "leaderboard-results" / "results" / "sentence-transformers__all-MiniLM-L6-v2"
    assert (published / target.name).is_dir() and meta.revision_from == "--revision"
    loaded = mteb.ResultCache(tmp_path / "flag").load_results(require_model_meta=True, include_remote=False)
    assert [mr.model_revision for mr in loaded.model_results] == [LEADERBOARD_COMMIT]
    # a run of weights in a hub-cache snapshot folder records the commit, and submit uses it unasked
    (manifest_file,) = out.glob("qzhou-run-*.json")
    manifest = json.loads(manifest_file.read_text())
    manifest["model"]["hub_revision"] = LEADERBOARD_COMMIT
    manifest_file.write_text(json.dumps(manifest))
    target, meta = submit(out, tmp_path / "recorded", allow_partial=True)
    assert target.name == LEADERBOARD_COMMIT and meta.revision_from == "the hub commit the run loaded"


def test_a_hub_cache_snapshot_names_its_commit(minilm_path, tmp_path):
    from qzhou_eval.modeling.checkpoint_info import read_checkpoint
    from qzhou_eval.modeling.source import resolve_source

    snapshot = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / LEADERBOARD_COMMIT
    snapshot.mkdir(parents=True)
    for item in Path(minilm_path).iterdir():
        (snapshot / item.name).symlink_to(item)
    info = read_checkpoint(resolve_source(snapshot))
    assert info.hub_id == "sentence-transformers/all-MiniLM-L6-v2" and info.hub_revision == LEADERBOARD_COMMIT
    assert read_checkpoint(resolve_source(minilm_path)).hub_revision is None


def test_the_report_side_runs_with_torch_and_the_doers_unimportable(finished_run, tmp_path):
    """report, compare, card and submit read a model-free record format: they run with runs/, encoder/,
    modeling/loading and api made unimportable, and never import torch (readers below doers)."""
    import subprocess
    import sys

    out, code, _ = finished_run
    assert code == 0
    run_dir = next(out.glob("results/*/*"))
    readme = tmp_path / "README.md"
    readme.write_text("# a model\n")
    commands = [
        ["report", str(out), "--benchmark", "MTEB(eng, v2)", "--out", str(tmp_path / "report.md")],
        ["compare", str(out), str(out)],
        ["card", str(run_dir), "--readme", str(readme), "--overwrite"],
        ["submit", str(out), "--out", str(tmp_path / "submission"), "--allow-partial"],
    ]
    script = f"""
import sys
# None in sys.modules: importing the name fails (torch is checked after: libraries probe sys.modules for it)
for name in ("qzhou_eval.runs", "qzhou_eval.encoder", "qzhou_eval.modeling.loading", "qzhou_eval.api"):
    sys.modules[name] = None
from qzhou_eval.cli.main import main
for argv in {commands!r}:
    assert main(argv) == 0, argv
assert "torch" not in sys.modules, "the report side imported torch"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
