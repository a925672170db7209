"""Runs beyond the two suites (any mteb benchmark, named tasks) and failure isolation on real data."""

import gzip
import json
import shutil
import stat

import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.runs.suites import named_tasks, run_tasks


def test_any_benchmark_and_named_tasks_select_real_mteb_tasks():
    assert [t.metadata.name for t in run_tasks("MTEB(eng, v1)", ["SciFact"], [], [])] == ["SciFact"]
    assert [t.metadata.name for t in run_tasks(None, ["SciFact", "LCQMC"], ["LCQMC"], [])] == ["SciFact"]
    with pytest.raises(InvalidOptionError, match=r"mteb knows no task 'SciFac' \(closest: \['SciFact'"):
        named_tasks(["SciFac"])
    with pytest.raises(InvalidOptionError, match=r"mteb does not know the benchmark 'MTEB\(eng, v3\)'.*closest"):
        run_tasks("MTEB(eng, v3)", [], [], [])


def test_cli_needs_a_benchmark_or_tasks(tmp_path, capsys):
    assert main(["run", "--output_dir", str(tmp_path / "x")]) == 2
    assert "pass --benchmark NAME" in capsys.readouterr().err


def _writable_copy(src, dst):
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_failing_task_is_recorded_and_the_others_run(
    finished_run, minilm_path, shared_dir, tmp_path, capsys, monkeypatch
):
    import datasets

    # `datasets` caches a local folder by its name: keep this corrupted PAWSX out of the shared cache.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    data = tmp_path / "data"
    for task in ("STSBenchmark", "PAWSX"):
        _writable_copy(shared_dir / "mteb-data" / task, data / task)
    with gzip.open(data / "PAWSX" / "test.jsonl.gz", "wt", encoding="utf-8") as fh:  # passes the data check, not mteb
        fh.write(json.dumps({"sentence1": "a", "sentence2": "b", "score": "high"}) + "\n")
    cached, _, _ = finished_run
    out = tmp_path / "run"
    argv = [
        "run",
        "--tasks",
        "PAWSX,STSBenchmark",
        "--model_name_or_path",
        minilm_path,
        "--data_dir",
        str(data),
        "--output_dir",
        str(out),
        "--cache_dir",
        str(cached / ".embedding_cache"),
        "-q",
    ]
    assert main(argv) == 1, "a failed task must make the exit code non-zero"
    printed = capsys.readouterr().out
    assert "1 task(s) failed: PAWSX" in printed and "STSBenchmark" in printed
    manifest = json.loads((out / "qzhou-run-tasks.json").read_text())
    assert manifest["tasks"]["STSBenchmark"]["status"] == "finished"
    assert manifest["tasks"]["STSBenchmark"]["main_score"] == pytest.approx(0.8203, abs=1e-4)
    error = manifest["tasks"]["PAWSX"]["error"]
    assert manifest["tasks"]["PAWSX"]["status"] == "failed" and error["type"] and error["message"]
    assert "Traceback" in (out / "errors" / "PAWSX.txt").read_text()

    assert main(argv) == 1, "the rerun retries only what is missing"
    again = capsys.readouterr().out
    assert "finished earlier" in again and "FAILED" in again
    assert main([*argv, "--fail_fast"]) == 1, "--fail_fast records the failure and stops, like any failed run"
    assert "FAILED TypeError" in capsys.readouterr().out


def test_checkpoint_max_seq_length_is_used_and_recorded(finished_run):
    out, code, _ = finished_run
    assert code == 0
    resolved = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())["resolved_options"]
    assert resolved["max_length"] == {"value": 256, "source": "checkpoint: sentence_bert_config.json max_seq_length"}
    assert resolved["pooling"]["source"] == "checkpoint: modules.json (Pooling config)"
