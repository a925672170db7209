"""Concurrent runs on one output folder: shards share it, other inputs are refused, nobody loses entries or temps."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qzhou_eval._atomic import TMP_SUFFIX, temp_prefix
from qzhou_eval.errors import OutputDirBusy
from qzhou_eval.record.inputs import RunInputs
from qzhou_eval.run_manifest import RunManifest, TaskEntry
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.folder_lock import OutputFolderLock
from qzhou_eval.runs.results_io import remove_stale_temp_files
from qzhou_eval.runs.runner import RunConfig, run_suite

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
INPUTS = RunInputs(MODEL_NAME, "abc", {"pooling": "mean"}, False, None)


def _writer(folder: str, worker: int, count: int) -> None:
    lock = OutputFolderLock(Path(folder), INPUTS, f"writer {worker}")
    path = Path(folder) / "qzhou-run-tasks.json"
    with lock:
        for i in range(count):
            manifests.update(path, RunManifest(benchmark="tasks"), {f"w{worker}-{i}": TaskEntry("finished")}, lock)


@pytest.mark.multiproc
def test_manifest_updates_from_two_processes_keep_every_entry(tmp_path):
    """Campaign: concurrent shards dropped each other's manifest entries (2 of 4 scenarios)."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 150)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    tasks = json.loads((tmp_path / "qzhou-run-tasks.json").read_text())["tasks"]
    assert len(tasks) == 300, "a read-modify-write lost entries"


def test_a_run_with_other_inputs_is_refused_naming_the_live_one(tmp_path, minilm_path, shared_dir):
    out = tmp_path / "out"
    live = RunInputs(MODEL_NAME, "somerevision", {"pooling": "cls"}, False, None)
    with OutputFolderLock(out, live, "a live run"):
        config = RunConfig(
            model_name_or_path=minilm_path,
            benchmark=None,
            output_dir=out,
            tasks=["STSBenchmark"],
            data_dir=shared_dir / "mteb-data",
            model_name=MODEL_NAME,
        )
        with pytest.raises(
            OutputDirBusy,
            match=rf"in use by another run with other inputs \(pid {os.getpid()}.*"
            r"revision: 'somerevision' -> .*pooling: 'cls' -> 'mean'",
        ):
            run_suite(config)
    registrations = list((out / ".qzhou" / "runs").glob("*.json"))
    assert registrations == [], "a finished run must leave no registration behind"


def test_a_dead_runs_registration_does_not_block(tmp_path):
    runs = tmp_path / ".qzhou" / "runs"
    runs.mkdir(parents=True)
    other = RunInputs(MODEL_NAME, "x", {"pooling": "cls"}, False, None)
    (runs / "elsewhere-1.json").write_text(json.dumps({"pid": 1, "inputs": other.as_record()}))  # nobody holds it
    with OutputFolderLock(tmp_path, INPUTS, "me"):
        assert not (runs / "elsewhere-1.json").exists()


def test_cleanup_removes_only_temp_files_of_dead_writers(tmp_path):
    """Campaign: one run's stale-temp cleanup deleted another live run's temp file."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname().replace(".", "_")
        live = tmp_path / f".STS12.json.{host}-{sleeper.pid}.abc{TMP_SUFFIX}"
        dead_pid = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dead = tmp_path / f".STS13.json.{host}-{dead_pid}.def{TMP_SUFFIX}"
        mine = tmp_path / f"{temp_prefix('STS14.json')}ghi{TMP_SUFFIX}"
        for path in (live, dead, mine):
            path.write_text("partial")
        assert remove_stale_temp_files(tmp_path) == 1
        assert live.exists() and mine.exists() and not dead.exists()
    finally:
        sleeper.kill()


@pytest.mark.multiproc
def test_two_shard_processes_started_together_keep_every_result(tmp_path, minilm_path, copy_task):
    """Two shards of one request on one folder at once: all manifest entries, results and records survive."""
    data = tmp_path / "data"
    tasks = ["STSBenchmark", "SICK-R", "PAWSX", "LCQMC"]
    for task in tasks:
        copy_task(task, data, rows=40)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "qzhou_eval.cli.main",
        "-q",
        "run",
        "--tasks",
        ",".join(tasks),
        "--model_name_or_path",
        minilm_path,
        "--model_name",
        MODEL_NAME,
        "--data_dir",
        str(data),
        "--output_dir",
        str(out),
    ]
    procs = [
        subprocess.Popen(
            [*cmd, "--shard", f"{i}/2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    manifest = json.loads((out / "qzhou-run-tasks.json").read_text())
    assert sorted(manifest["tasks"]) == sorted(tasks)
    assert all(entry["status"] == "finished" for entry in manifest["tasks"].values())
    assert sorted(p.stem for p in out.glob("results/*/*/*.json") if p.name != "model_meta.json") == sorted(tasks)
    assert sorted(p.stem for p in out.glob(".qzhou/records/*/*/*.json")) == sorted(tasks)
    assert not list(out.rglob(f"*{TMP_SUFFIX}")) and not list((out / ".qzhou" / "runs").glob("*.json"))
