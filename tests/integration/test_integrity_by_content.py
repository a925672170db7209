"""Identity by content (issue 21): every case of the campaign now re-runs, refuses, or fails clearly.

Each test makes the campaign's change the way a user would (in place, same size, mtime restored) and
checks the harness sees it: a changed checkpoint or data file is evaluated again and scores as a run
from scratch does; an edited record or result is never shown; a full disk stops the run without
moving anything aside; a model that cannot read a task is an error or a loud, recorded warning.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from minilm_runs import MINILM_NAME, minilm_config

from qzhou_eval.errors import ModelFormatError, OutputDirConflict, ResultFileError, UnreadableTaskError
from qzhou_eval.integrity.content import ContentMemo
from qzhou_eval.runs.resume_check import finished_run_summary
from qzhou_eval.runs.runner import run_suite

MODEL_NAME = MINILM_NAME
REPO = Path(__file__).resolve().parents[2]


def _keep_mtime(path: Path):
    stat = path.stat()
    return lambda: os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def scale_tensor_in_place(weights: Path, name: str, factor: float) -> None:
    """Multiply one float32 tensor of a safetensors file in place: same size, mtime restored."""
    restore = _keep_mtime(weights)
    with weights.open("r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
        start, end = header[name]["data_offsets"]
        fh.seek(8 + length + start)
        values = np.frombuffer(fh.read(end - start), dtype=np.float32) * np.float32(factor)
        fh.seek(8 + length + start)
        fh.write(values.astype(np.float32).tobytes())
    restore()


@pytest.fixture
def model_copy(minilm_path, tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(minilm_path, folder)
    return folder


@pytest.fixture
def small_sts(copy_task, tmp_path) -> Path:
    root = tmp_path / "data"
    copy_task("STSBenchmark", root, rows=200)
    return root


def test_a_checkpoint_changed_in_place_is_evaluated_again(model_copy, small_sts, tmp_path):
    """Campaign: one tensor scaled inside model.safetensors (same size) was reported as 'finished earlier'."""
    out = tmp_path / "out"
    before = run_suite(minilm_config(model_copy, small_sts, out))
    scale_tensor_in_place(model_copy / "model.safetensors", "encoder.layer.0.attention.self.query.weight", 1.5)
    with pytest.raises(OutputDirConflict, match=r"revision: '\w+' -> '\w+'"):
        run_suite(minilm_config(model_copy, small_sts, out))  # the same folder now holds another model's results
    after = run_suite(minilm_config(model_copy, small_sts, out, overwrite=True))
    assert after.ran == ["STSBenchmark"] and after.skipped == [], "a changed checkpoint is not the finished one"
    assert after.results_dir != before.results_dir, "its identity (the revision folder) follows the bytes"
    assert after.encode_stats.encoded > 0 and after.encode_stats.reused_earlier == 0, "no stale cached vector"
    fresh = run_suite(minilm_config(model_copy, small_sts, tmp_path / "fresh"))
    assert after.scores["STSBenchmark"] == pytest.approx(fresh.scores["STSBenchmark"], abs=1e-6)
    assert after.scores["STSBenchmark"] != pytest.approx(before.scores["STSBenchmark"], abs=1e-4)


def _rewrite_stored_gzip(path: Path, rows: list[dict]) -> None:
    """gzip level 0 with a fixed header: the size depends only on the text's length."""
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=0, mtime=0) as fh:
        fh.write(text)


def test_a_data_file_edited_with_size_and_mtime_kept_is_seen(minilm_path, small_sts, tmp_path):
    """Campaign: digests were memoised by (size, mtime); `touch -r` hid an edit from rerun, --overwrite and new folders."""
    split = small_sts / "STSBenchmark" / "test.jsonl.gz"
    with gzip.open(split, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    _rewrite_stored_gzip(split, rows)
    out = tmp_path / "out"
    before = run_suite(minilm_config(minilm_path, small_sts, out))
    size, restore = split.stat().st_size, _keep_mtime(split)
    scores = [r["score"] for r in rows[:60]][::-1]  # the same score strings in another order: same length
    edited = [dict(r, score=scores[i]) if i < 60 else r for i, r in enumerate(rows)]
    _rewrite_stored_gzip(split, edited)
    assert split.stat().st_size == size
    restore()
    after = run_suite(minilm_config(minilm_path, small_sts, out))
    assert after.ran == ["STSBenchmark"], "the edited data must be evaluated, not served from the old record"
    fresh = run_suite(minilm_config(minilm_path, small_sts, tmp_path / "fresh"))
    assert after.scores["STSBenchmark"] == pytest.approx(fresh.scores["STSBenchmark"], abs=1e-6)
    assert after.scores["STSBenchmark"] != pytest.approx(before.scores["STSBenchmark"], abs=1e-4)


def test_the_memo_misses_on_any_edit_even_with_size_and_mtime_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1 << 16))
    first = ContentMemo("t").digest(path)
    restore = _keep_mtime(path)
    with path.open("r+b") as fh:
        fh.seek(4097)
        byte = fh.read(1)
        fh.seek(4097)
        fh.write(bytes([byte[0] ^ 0x10]))
    restore()
    memo = ContentMemo("t")
    assert memo.digest(path) != first
    memo.save()
    memo_file = tmp_path / "cache" / "qzhou-eval" / "t.json"
    data = json.loads(memo_file.read_text())
    entry = next(iter(data["files"].values()))
    entry["digest"] = first  # a memo edited by hand (or damaged) is never believed
    memo_file.write_text(json.dumps(data))
    assert ContentMemo("t").digest(path) != first


def test_an_edited_record_is_never_shown(finished_run, minilm_path, shared_dir, tmp_path, capsys):
    """Campaign: main_score edited in .qzhou/records/.../STSBenchmark.json printed '99.12 finished earlier'."""
    out = tmp_path / "copy"
    shutil.copytree(finished_run[0], out)
    record_file = next(out.glob(".qzhou/records/*/*/STSBenchmark.json"))
    record = json.loads(record_file.read_text())
    true_score = record["main_score"]
    record["main_score"] = 0.9912
    record_file.write_text(json.dumps(record))
    config = minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)")
    assert finished_run_summary(config) is None, "the fast path must not believe the record"
    summary = run_suite(config)
    assert summary.ran == ["STSBenchmark"]
    assert summary.scores["STSBenchmark"] == pytest.approx(true_score, abs=1e-6)
    again = finished_run_summary(config)
    assert again is not None and again.scores["STSBenchmark"] == pytest.approx(true_score, abs=1e-6)


def test_report_and_compare_refuse_a_result_that_is_not_the_recorded_one(finished_run, tmp_path, capsys):
    from qzhou_eval.cli.main import main
    from qzhou_eval.report.regression import compare_runs

    out = tmp_path / "copy"
    shutil.copytree(finished_run[0], out)
    assert main(["report", str(out), "--benchmark", "MTEB(eng, v2)"]) == 0
    result = next(out.glob("results/*/*/STSBenchmark.json"))
    data = json.loads(result.read_text())
    data["scores"]["test"][0]["main_score"] = 0.9912
    result.write_text(json.dumps(data))
    capsys.readouterr()
    for argv in (
        ["report", str(out), "--benchmark", "MTEB(eng, v2)"],
        ["compare", str(finished_run[0]), str(out)],
        ["card", str(out), "--out", str(tmp_path / "card.md")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "is not the file its record names" in err and "Traceback" not in err, err
    with pytest.raises(ResultFileError, match="STSBenchmark.json is not the file its record names"):
        compare_runs(finished_run[0], out)


def test_a_tokenizer_that_reads_nothing_fails_the_task_before_scoring(model_copy, small_sts, tmp_path):
    """A vocabulary of special tokens only: every text becomes [UNK]; the campaign's missing-tokenizer case scored 3.25."""
    (model_copy / "tokenizer.json").unlink()
    (model_copy / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    summary = run_suite(minilm_config(model_copy, small_sts, tmp_path / "out"))
    assert summary.scores == {} and list(summary.failed) == ["STSBenchmark"]
    failure = summary.failed["STSBenchmark"]
    assert failure.error_type == UnreadableTaskError.__name__
    assert "collapse to another text's token sequence" in failure.message and "tokenizer" in failure.message


def test_a_model_folder_without_tokenizer_is_refused_before_loading(model_copy, small_sts, tmp_path):
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (model_copy / name).unlink()
    with pytest.raises(ModelFormatError, match="holds no tokenizer files"):
        run_suite(minilm_config(model_copy, small_sts, tmp_path / "out"))


def test_poor_readability_is_a_warning_in_the_manifest_and_the_report(minilm_path, copy_task, tmp_path, caplog):
    """An English WordPiece on Chinese: every LCQMC text has [UNK] pieces; the score stands, the figures are shown."""
    from qzhou_eval.report.tables import build_report, render

    data = tmp_path / "data"
    copy_task("LCQMC", data, rows=150)
    out = tmp_path / "out"
    summary = run_suite(minilm_config(minilm_path, data, out, tasks=["LCQMC"]))
    assert summary.ran == ["LCQMC"] and not summary.failed
    manifest = json.loads((out / "qzhou-run-tasks.json").read_text())
    figures = manifest["tasks"]["LCQMC"]["readability"]
    assert figures["texts_with_unknown_tokens"] > 0.9 and figures["unknown_token_pieces"] > 0.5
    assert "LCQMC: the model reads this task's texts poorly" in caplog.text
    text = render(build_report([out], "MTEB(cmn, v1)"))
    assert "LCQMC:" in text and "of sampled texts contain unknown tokens" in text


def test_a_full_disk_stops_the_run_and_moves_nothing_aside(minilm_path, small_sts, tmp_path):
    """Campaign: under `ulimit -f` the healthy cache was moved aside as 'unreadable' and the run exited 0."""
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "qzhou_eval.cli.main",
        "-q",
        "run",
        "--tasks",
        "STSBenchmark",
        "--model_name_or_path",
        minilm_path,
        "--model_name",
        MODEL_NAME,
        "--data_dir",
        str(small_sts),
        "--output_dir",
        str(out),
    ]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    limited = subprocess.run(
        ["bash", "-c", 'ulimit -f 400; exec "$@"', "_", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    assert limited.returncode == 2, limited.stderr[-2000:]
    assert "qzhou-eval: error:" in limited.stderr and "Traceback" not in limited.stderr
    assert "rerun the same command to continue" in limited.stderr
    assert not list(out.rglob("*unreadable*")), "a full disk is not damage: nothing is moved aside"
    resumed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "STSBenchmark" in resumed.stdout and "ran" in resumed.stdout


def test_a_record_from_before_checksums_is_shown_but_never_reused(finished_run, minilm_path, shared_dir, tmp_path):
    """Run folders made before records carried a checksum still report; a run re-runs their tasks."""
    from qzhou_eval.cli.main import main

    out = tmp_path / "copy"
    shutil.copytree(finished_run[0], out)
    record_file = next(out.glob(".qzhou/records/*/*/STSBenchmark.json"))
    record = json.loads(record_file.read_text())
    del record["record_check"]
    record_file.write_text(json.dumps(record))
    assert main(["report", str(out), "--benchmark", "MTEB(eng, v2)"]) == 0
    summary = run_suite(minilm_config(minilm_path, shared_dir / "mteb-data", out, benchmark="MTEB(eng, v2)"))
    assert summary.ran == ["STSBenchmark"]
