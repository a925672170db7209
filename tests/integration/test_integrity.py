"""No silent wrong score: each silent case of the fault campaign now re-runs, refuses, or fails clearly."""

import gzip
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from minilm_runs import MINILM_NAME, minilm_config

from qzhou_eval.encoder.cache import TABLE, checksum
from qzhou_eval.errors import DataDirError, OutputDirConflict
from qzhou_eval.runs.results_io import read_task_result
from qzhou_eval.runs.runner import run_suite

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = MINILM_NAME


def _finished_copy(finished_run, dst: Path) -> Path:
    """A copy of the session's finished STSBenchmark run (results, records, manifest, cache)."""
    out, code, _ = finished_run
    assert code == 0
    shutil.copytree(out, dst)
    return dst


def _reference_score(finished_run) -> float:
    return read_task_result(next(finished_run[0].glob("results/*/*/STSBenchmark.json"))).get_score()


def test_replaced_data_is_read_and_rerun_never_served_from_a_stale_cache(
    finished_run, minilm_path, copy_task, tmp_path
):
    """Campaign: a partial copy, then the real folder at the same path, reported the partial copy's score."""
    data = tmp_path / "data"
    copy_task("STSBenchmark", data, rows=60)
    out = tmp_path / "out"
    partial = run_suite(minilm_config(minilm_path, data, out, cache_dir=False))
    shutil.rmtree(data / "STSBenchmark")
    copy_task("STSBenchmark", data)  # the real data, same folder name and path
    real = run_suite(minilm_config(minilm_path, data, out, cache_dir=False))
    assert real.ran == ["STSBenchmark"], "a result over other data must not count as finished"
    assert real.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run), abs=1e-6)
    assert partial.scores["STSBenchmark"] != pytest.approx(real.scores["STSBenchmark"], abs=1e-3)


def test_options_are_bound_to_results_even_without_the_manifest(finished_run, minilm_path, shared_dir, tmp_path):
    """Campaign: with the manifest missing, --pooling_mode cls reported the mean-pooling scores as finished."""
    out = _finished_copy(finished_run, tmp_path / "copy")
    (out / "qzhou-run-MTEB-eng-v2.json").unlink()
    config = minilm_config(
        minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)", encoder_options={"pooling": "cls"}
    )
    with pytest.raises(OutputDirConflict, match=r"STSBenchmark.json: pooling: 'mean' -> 'cls'.*--overwrite"):
        run_suite(config)


def test_spelling_out_the_defaults_is_not_a_change(finished_run, minilm_path, shared_dir, tmp_path):
    """Campaign: the README's reference flags on a folder made with the defaults were refused."""
    out = _finished_copy(finished_run, tmp_path / "copy")
    spelled = {"pooling": "mean", "normalize": True, "max_length": 256, "batch_size": 64, "dtype": "fp32"}
    summary = run_suite(
        minilm_config(
            minilm_path,
            shared_dir / "mteb-data",
            out,
            benchmark="MTEB(eng, v2)",
            encoder_options=spelled,
            use_instruction=False,
            device="cpu",
        )
    )
    assert summary.ran == [] and summary.skipped == ["STSBenchmark"]


def test_unreadable_manifest_is_set_aside_and_nothing_is_rerun(finished_run, minilm_path, shared_dir, tmp_path, caplog):
    out = _finished_copy(finished_run, tmp_path / "copy")
    manifest = out / "qzhou-run-MTEB-eng-v2.json"
    manifest.write_bytes(b"\xff\xfe{not json")
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    assert summary.ran == [] and summary.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run))
    assert "is unreadable" in caplog.text and list(out.glob("qzhou-run-MTEB-eng-v2.json.unreadable-*"))
    assert json.loads(manifest.read_text())["inputs"]["options"]["pooling"] == "mean", "the manifest is rebuilt"


def test_an_edited_result_file_is_not_trusted(finished_run, minilm_path, shared_dir, tmp_path):
    out = _finished_copy(finished_run, tmp_path / "copy")
    result = next(out.glob("results/*/*/STSBenchmark.json"))
    data = json.loads(result.read_text())
    data["scores"]["test"][0]["main_score"] = 0.99
    result.write_text(json.dumps(data))
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    assert summary.ran == ["STSBenchmark"]
    assert summary.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run), abs=1e-6)


def _damage_vectors(db: Path, every: int = 1) -> int:
    """Flip one byte in the stored vector of every ``every``-th cache entry; return how many."""
    with sqlite3.connect(db) as con:
        rows = con.execute(f"SELECT key, vec FROM {TABLE}").fetchall()
        damaged = 0
        for index, (key, vec) in enumerate(rows):
            if index % every == 0:
                blob = bytearray(vec)
                blob[5] ^= 0xFF
                con.execute(f"UPDATE {TABLE} SET vec = ? WHERE key = ?", (bytes(blob), key))
                damaged += 1
    return damaged


def _forget_result(out: Path) -> None:
    """Remove the result and its record, keeping the embedding cache: the task runs again."""
    for path in [*out.glob("results/*/*/STSBenchmark.json"), *out.glob(".qzhou/records/*/*/STSBenchmark.json")]:
        path.unlink()


def test_damaged_cache_entries_are_reencoded_never_used(finished_run, minilm_path, shared_dir, tmp_path):
    """Campaign: flipped bytes in stored vectors gave STSBenchmark 81.75 with exit 0."""
    out = _finished_copy(finished_run, tmp_path / "copy")
    _forget_result(out)
    damaged = _damage_vectors(out / ".embedding_cache" / "embeddings.sqlite", every=7)
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    stats = summary.encode_stats
    assert stats.repaired == damaged and stats.encoded == damaged
    assert stats.reused_earlier > 0 and stats.duplicates > 0
    assert summary.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run), abs=1e-6)


def test_unreadable_cache_file_is_moved_aside(finished_run, minilm_path, shared_dir, tmp_path, caplog):
    out = _finished_copy(finished_run, tmp_path / "copy")
    _forget_result(out)
    db = out / ".embedding_cache" / "embeddings.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    assert "is unreadable" in caplog.text and list(db.parent.glob("embeddings.sqlite.unreadable-*"))
    assert summary.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run), abs=1e-6)


def _intact_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            rows = con.execute(f"SELECT key, dim, vec, checksum FROM {TABLE}").fetchall()
    except sqlite3.Error:
        return 0
    return sum(checksum(k, d, v) == c for k, d, v, c in rows)


@pytest.mark.multiproc
def test_sigkill_during_cache_recovery_then_resume(finished_run, minilm_path, shared_dir, tmp_path):
    """A run repairing a damaged cache is killed; the next run keeps the repairs and gets the same score."""
    out = _finished_copy(finished_run, tmp_path / "copy")
    _forget_result(out)
    db = out / ".embedding_cache" / "embeddings.sqlite"
    total = _damage_vectors(db)
    cmd = [
        sys.executable,
        "-m",
        "qzhou_eval.cli.main",
        "run",
        "--benchmark",
        "MTEB(eng, v2)",
        "--tasks",
        "STSBenchmark",
        "--model_name_or_path",
        minilm_path,
        "--model_name",
        MODEL_NAME,
        "--data_dir",
        str(shared_dir / "mteb-data"),
        "--output_dir",
        str(out),
        "--batch_size",
        "8",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _intact_rows(db) < 300:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    repaired_before_kill = _intact_rows(db)
    assert not list(out.glob("results/*/*/STSBenchmark.json")), "a killed task must not leave a result"
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    assert summary.encode_stats.repaired == total - repaired_before_kill, "repairs made before the kill were lost"
    assert summary.scores["STSBenchmark"] == pytest.approx(_reference_score(finished_run), abs=1e-6)
    assert _intact_rows(db) == total


def test_bad_split_file_fails_before_the_model_loads(minilm_path, copy_task, tmp_path, monkeypatch):
    """Campaign: a corrupt split file surfaced as a traceback, and only after the model was loaded."""
    import qzhou_eval.runs.task_loop as task_loop

    monkeypatch.setattr(task_loop, "build_encoder", lambda *a, **k: pytest.fail("the model was loaded"))
    data = tmp_path / "data"
    folder = copy_task("STSBenchmark", data)
    test_file = folder / "test.jsonl.gz"
    test_file.write_bytes(test_file.read_bytes()[:-200])  # truncated: gzip's trailer is gone
    with pytest.raises(DataDirError, match=r"test.jsonl.gz is unreadable or damaged.*copy the file again"):
        run_suite(minilm_config(minilm_path, data, tmp_path / "out"))
    test_file.unlink()
    with pytest.raises(DataDirError, match=r"test.jsonl.gz \(config 'default', split 'test'.*does not exist"):
        run_suite(minilm_config(minilm_path, data, tmp_path / "out"))
    with gzip.open(test_file, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"sentence1": "a", "sentence2": "b", "label": 3}) + "\n")
    with pytest.raises(DataDirError, match=r"lacks column\(s\) \['score'\] that mteb reads for STSBenchmark"):
        run_suite(minilm_config(minilm_path, data, tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing may be written on bad input"
