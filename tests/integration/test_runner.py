"""The suite runner: selection, sharding, offline data checks, output-folder safety, resume after SIGKILL."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from minilm_runs import minilm_config

from qzhou_eval.benchmarks import benchmark_tasks as suite_tasks
from qzhou_eval.encoder.cache import TABLE
from qzhou_eval.errors import DataDirError, InvalidOptionError, OutputDirConflict
from qzhou_eval.runs.offline import attach_data_dir
from qzhou_eval.runs.results_io import read_task_result
from qzhou_eval.runs.resume_check import finished_run_summary
from qzhou_eval.runs.runner import run_suite
from qzhou_eval.runs.suites import parse_shard, select_tasks, shard

REPO = Path(__file__).resolve().parents[2]
ENG, CMN = "MTEB(eng, v2)", "MTEB(cmn, v1)"


@pytest.mark.parametrize("suite", [ENG, CMN])
def test_shards_partition_the_suite(suite):
    tasks = [t.metadata.name for t in suite_tasks(suite)]
    a = [t.metadata.name for t in shard(suite_tasks(suite), parse_shard("0/2"))]
    b = [t.metadata.name for t in shard(suite_tasks(suite), parse_shard("1/2"))]
    assert not set(a) & set(b), "shards overlap"
    assert sorted(a + b) == sorted(tasks), "shards do not cover the suite"
    assert shard(suite_tasks(suite), parse_shard("0/1")) and len(a) == (len(tasks) + 1) // 2


@pytest.mark.parametrize("spec", ["2/2", "-1/3", "1/0", "a/b", "3"])
def test_bad_shard(spec):
    with pytest.raises(InvalidOptionError, match="--shard"):
        parse_shard(spec)


def test_task_selection_errors():
    tasks = suite_tasks(ENG)
    with pytest.raises(InvalidOptionError, match=r"unknown task 'STSBenchmrk'; closest in the suite: \['STSBenchmark'"):
        select_tasks(tasks, ENG, include=["STSBenchmrk"])
    with pytest.raises(InvalidOptionError, match=r"task 'LCQMC' is not part of MTEB\(eng, v2\)"):
        select_tasks(tasks, ENG, include=["LCQMC"])
    with pytest.raises(InvalidOptionError, match="'Sts' is not a valid task type"):
        select_tasks(tasks, ENG, task_types=["Sts"])
    chosen = select_tasks(tasks, ENG, task_types=["STS"], exclude=["STS12"])
    assert {t.metadata.type for t in chosen} == {"STS"} and "STS12" not in {t.metadata.name for t in chosen}


def test_data_dir_errors(tmp_path, shared_dir):
    tasks = select_tasks(suite_tasks(ENG), ENG, include=["STSBenchmark", "SICK-R", "BIOSSES"])
    with pytest.raises(DataDirError, match="does not exist"):
        attach_data_dir(tasks, tmp_path / "nowhere")
    (tmp_path / "SICK-R").mkdir()
    (tmp_path / "STSBenchmark").mkdir()
    (tmp_path / "STSBenchmark" / "README.md").write_text("no yaml")
    with pytest.raises(DataDirError) as err:
        attach_data_dir(tasks, tmp_path)
    msg = str(err.value)
    assert "3 task(s) are not usable" in msg and "BIOSSES (missing)" in msg and "SICK-R (no README.md)" in msg
    assert "STSBenchmark (README.md has no YAML 'configs:' header)" in msg and "expected <data_dir>/<TaskName>" in msg
    with pytest.raises(DataDirError, match=r"1 task\(s\) are not usable.*BIOSSES"):
        attach_data_dir(tasks, shared_dir / "mteb-data")


def _config(minilm_path, shared_dir, out, **kw):
    """The shared MiniLM run, filed under the suite (as ``finished_run`` ran it)."""
    data_dir = kw.pop("data_dir", shared_dir / "mteb-data")
    return minilm_config(minilm_path, data_dir, out, **{"benchmark": ENG, **kw})


def test_real_task_end_to_end_and_skip(finished_run, minilm_path, shared_dir, capsys):
    out, code, _ = finished_run
    assert code == 0
    files = list(out.glob("results/sentence-transformers__all-MiniLM-L6-v2/*/STSBenchmark.json"))
    assert len(files) == 1 and (files[0].parent / "model_meta.json").is_file()
    result = read_task_result(files[0])
    assert result is not None, "mteb's TaskResult cannot read the result file"
    assert result.get_score() == pytest.approx(0.8203, abs=0.002)
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["tasks"]["STSBenchmark"]["wall_s"] > 0 and manifest["versions"]["mteb"]
    assert manifest["model"]["revision"] == files[0].parent.name
    again = run_suite(_config(minilm_path, shared_dir, out))  # other batch size: still the same run
    assert again.ran == [] and again.skipped == ["STSBenchmark"]
    quick = finished_run_summary(_config(minilm_path, shared_dir, out))
    assert quick is not None and quick.scores == pytest.approx(again.scores, abs=1e-12)
    assert finished_run_summary(_config(minilm_path, shared_dir, out, use_instruction=True)) is None
    assert finished_run_summary(_config(minilm_path, shared_dir, out, tasks=["STSBenchmark", "SICK-R"])) is None


def test_finished_run_check_imports_neither_mteb_nor_torch(finished_run, minilm_path, shared_dir):
    out, _, _ = finished_run
    code = (
        "import sys; from pathlib import Path; from qzhou_eval.runs.resume_check import finished_run_summary;"
        "from qzhou_eval.runs.config import RunConfig;"
        f"s = finished_run_summary(RunConfig(model_name_or_path={minilm_path!r}, benchmark='MTEB(eng, v2)',"
        f" output_dir=Path({str(out)!r}), tasks=['STSBenchmark'], model_name='sentence-transformers/all-MiniLM-L6-v2',"
        f" data_dir=Path({str(shared_dir / 'mteb-data')!r})));"
        "assert s is not None; assert 'mteb' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_other_options_are_refused_then_set_aside(finished_run, minilm_path, shared_dir, tmp_path):
    out, _, _ = finished_run
    with pytest.raises(OutputDirConflict, match=r"normalize: True -> False.*pass --overwrite"):
        run_suite(_config(minilm_path, shared_dir, out, encoder_options={"normalize": False}, tasks=["SICK-R"]))
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    summary = run_suite(
        _config(
            minilm_path,
            shared_dir,
            copy,
            use_instruction=True,
            overwrite=True,
            exclude_tasks=[],
            tasks=["STSBenchmark"],
            cache_dir=False,
        )
    )
    assert summary.ran == ["STSBenchmark"]
    kept = list(copy.glob("replaced-*/results/sentence-transformers__all-MiniLM-L6-v2/*/STSBenchmark.json"))
    assert len(kept) == 1, "the earlier results must be moved aside, not deleted"
    moved = list(copy.glob("replaced-*/.qzhou/evidence/sentence-transformers__all-MiniLM-L6-v2/*/STSBenchmark.*.gz"))
    assert len(moved) == 2, "their per-sample evidence moves with them"
    assert len(list(copy.glob(".qzhou/evidence/*/*/STSBenchmark.units.json.gz"))) == 1


def test_per_sample_evidence_is_bound_to_its_result(finished_run, minilm_path, shared_dir, tmp_path):
    """Evidence is reused only while it is the recorded evidence; asking for it reruns a task that has none."""
    from qzhou_eval.significance.recorded_units import RecordedUnits, recorded_units

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run[0]), str(copy)], check=True)
    result_file = next(copy.glob("results/sentence-transformers__all-MiniLM-L6-v2/*/STSBenchmark.json"))
    found = recorded_units(result_file)
    assert isinstance(found, RecordedUnits) and 100 * found.units.point() == pytest.approx(82.03, abs=0.01)
    assert finished_run_summary(_config(minilm_path, shared_dir, copy)) is not None
    units = next(copy.glob(".qzhou/evidence/*/*/STSBenchmark.units.json.gz"))
    units.write_bytes(units.read_bytes() + b"\0")  # damaged or edited after the run
    assert "not the file its record names" in recorded_units(result_file)
    assert finished_run_summary(_config(minilm_path, shared_dir, copy)) is None
    assert finished_run_summary(_config(minilm_path, shared_dir, copy, predictions=False)) is not None
    again = run_suite(_config(minilm_path, shared_dir, copy))  # embeddings come from the run's cache
    assert again.ran == ["STSBenchmark"] and isinstance(recorded_units(result_file), RecordedUnits)
    manifest = json.loads((copy / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["tasks"]["STSBenchmark"]["evidence"] == {"units": "kept"}
    assert again.scores["STSBenchmark"] == pytest.approx(found.units.point(), abs=1e-12)

    bare = tmp_path / "bare"  # --no_predictions: nothing kept, and a later default run adds the evidence
    cache = copy / ".embedding_cache"
    assert run_suite(_config(minilm_path, shared_dir, bare, predictions=False, cache_dir=cache)).ran == ["STSBenchmark"]
    assert not (bare / ".qzhou" / "evidence").exists() or not any((bare / ".qzhou" / "evidence").rglob("*.gz"))
    bare_result = next(bare.glob("results/sentence-transformers__all-MiniLM-L6-v2/*/STSBenchmark.json"))
    assert "no per-sample data" in recorded_units(bare_result)
    assert run_suite(_config(minilm_path, shared_dir, bare, cache_dir=cache)).ran == ["STSBenchmark"]
    assert isinstance(recorded_units(bare_result), RecordedUnits)


def test_unwritable_output_dir(minilm_path, shared_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InvalidOptionError, match="is not writable"):
        run_suite(_config(minilm_path, shared_dir, blocker / "out"))


@pytest.mark.multiproc
def test_sigkill_mid_task_resumes_without_reencoding(finished_run, minilm_path, shared_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        str(REPO / "run_mteb_all_v2.py"),
        "--model_name_or_path",
        minilm_path,
        "--model_name",
        "sentence-transformers/all-MiniLM-L6-v2",
        "--data_dir",
        str(shared_dir / "mteb-data"),
        "--tasks",
        "STSBenchmark",
        "--output_dir",
        str(out),
        "--batch_size",
        "8",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    db = out / ".embedding_cache" / "embeddings.sqlite"
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    rows = con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
            except sqlite3.Error:
                rows = 0
            if rows >= 400:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as con:
        committed = con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
    assert not list(out.glob("results/*/*/STSBenchmark.json")), "a killed task must not leave a result file"
    summary = run_suite(_config(minilm_path, shared_dir, out, encoder_options={"batch_size": 8}))
    with sqlite3.connect(db) as con:
        total = con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["tasks"]["STSBenchmark"]["encode_stats"]["encoded"] == total - committed, (
        "committed embeddings were re-encoded"
    )
    reference = read_task_result(next(finished_run[0].glob("results/*/*/STSBenchmark.json"))).get_score()
    assert summary.scores["STSBenchmark"] == pytest.approx(reference, abs=1e-6)


def test_cli_run_bad_input_exits_2_before_loading(tmp_path, capsys):
    from qzhou_eval.cli.main import main

    assert main(["run", "--benchmark", ENG, "--tasks", "STS13,Nope", "--output_dir", str(tmp_path)]) == 2
    assert "unknown task 'Nope'" in capsys.readouterr().err
    assert main(["run", "--benchmark", ENG, "--shard", "5/2", "--output_dir", str(tmp_path)]) == 2
    assert "out of range" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing may be written on bad input"


def test_mirror_layout_from_local_sources(tmp_path, shared_dir, minilm_path):
    """A fake hub (the local task pack) stands in for snapshot_download; the mirror then serves a real run."""
    import shutil

    from qzhou_eval.runs.mirror import mirror_tasks, read_marker

    tasks = select_tasks(suite_tasks(ENG), ENG, include=["STSBenchmark", "SICK-R"])
    fetched = []

    def local_fetch(repo_id, revision, destination):
        fetched.append((repo_id, revision))
        task = next(t for t in tasks if t.metadata.dataset["path"] == repo_id)
        shutil.copytree(shared_dir / "mteb-data" / task.metadata.name, destination, dirs_exist_ok=True)

    out = tmp_path / "mirror"
    assert mirror_tasks(tasks, out, fetch=local_fetch) == {"SICK-R": "mirrored", "STSBenchmark": "mirrored"}
    assert set(fetched) == {(t.metadata.dataset["path"], t.metadata.dataset["revision"]) for t in tasks}
    sts = next(t for t in tasks if t.metadata.name == "STSBenchmark")
    marker = read_marker(out / "STSBenchmark")
    assert (marker["repo"], marker["revision"]) == (sts.metadata.dataset["path"], sts.metadata.dataset["revision"])
    assert mirror_tasks(tasks, out, fetch=local_fetch) == {"STSBenchmark": "present", "SICK-R": "present"}
    assert len(fetched) == 2, "mirrored tasks must not be fetched again"
    attach_data_dir(tasks, out)  # the mirror passes the runner's data-dir checks
    summary = run_suite(_config(minilm_path, shared_dir, tmp_path / "run", data_dir=out))
    assert summary.scores["STSBenchmark"] == pytest.approx(0.8203, abs=0.002)


def test_mirror_rejects_unusable_snapshot(tmp_path):
    from qzhou_eval.runs.mirror import mirror_tasks

    tasks = select_tasks(suite_tasks(ENG), ENG, include=["BIOSSES"])
    with pytest.raises(ValueError, match="BIOSSES: the snapshot of .* is not usable offline \\(no README.md\\)"):
        mirror_tasks(tasks, tmp_path, fetch=lambda repo, rev, dest: (dest / "x.txt").write_text("x"))
    assert not (tmp_path / "BIOSSES").exists(), "a failed fetch must not look finished"


def test_a_run_resolves_once_whether_finished_or_not(finished_run, minilm_path, shared_dir, tmp_path, monkeypatch):
    """One resolution (and one run of every check) per run: the resume check's serves the runner."""
    import qzhou_eval.resolution.resolve as resolution
    from qzhou_eval.cli.main import main
    from qzhou_eval.runs import resume_check, runner

    calls = {"resolve": 0, "check_values": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(resolution, "check_values", counted("check_values", resolution.check_values))
    counting = counted("resolve", resolution.resolve)
    monkeypatch.setattr(runner, "resolve", counting)
    monkeypatch.setattr(resume_check, "resolve", counting)
    out, _, _ = finished_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    argv = ["run", "--model_name_or_path", minilm_path, "--model_name", "sentence-transformers/all-MiniLM-L6-v2"]
    argv += ["--data_dir", str(shared_dir / "mteb-data"), "--tasks", "STSBenchmark", "--output_dir", str(copy)]
    assert main(argv) == 0 and calls == {"resolve": 1, "check_values": 1}, f"a finished run: {calls}"
    for record in copy.glob(".qzhou/records/*/*/STSBenchmark.json"):
        record.unlink()  # the result stands unrecorded: the task runs again
    calls.update(resolve=0, check_values=0)
    assert main(argv) == 0 and calls == {"resolve": 1, "check_values": 1}, f"a run with work to do: {calls}"
