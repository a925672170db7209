"""Cleaning: exact and normalised deduplication, the score floor, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.cleaning import clean, deduplicate, normalise
from qzhou_eval.train.data.schema import ClassificationRow, PairRow, RetrievalRow


def test_normalise_folds_case_width_spacing_and_punctuation():
    assert normalise("Hello,   World!") == normalise("hello world") == "hello world"
    assert normalise("ＡＢＣ１２３") == "abc123"  # full-width forms (NFKC)
    assert normalise("数据，清洗。") == normalise("数据 清洗")


def test_duplicates_are_counted_by_kind_and_the_first_is_kept():
    rows = [
        RetrievalRow("What is X?", "X is a letter."),
        RetrievalRow("What is X?", "X is a letter."),
        RetrievalRow("what is x", "X is a letter"),
        RetrievalRow("What is X?", "Another answer."),
    ]
    kept, exact, normalised = deduplicate(rows)
    assert kept == [rows[0], rows[3]] and (exact, normalised) == (1, 1)
    pairs = [PairRow("a b", "c d", 1.0), PairRow("c d", "a b", 1.0)]  # the same pair either way round
    assert deduplicate(pairs)[0] == pairs[:1]
    labelled = [ClassificationRow("Great film!", 1), ClassificationRow("great film", 0)]
    assert deduplicate(labelled)[2] == 1


def _lookup(table: dict[str, list[float]]):
    return lambda texts: np.array([table[t] for t in texts], dtype=np.float32)


def test_score_floor_by_value_and_by_percentile():
    rows = [RetrievalRow(f"q{i}", f"p{i}") for i in range(4)]
    angles = {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.5}  # cosine = cos(angle)
    table = {
        **{f"q{i}": [1.0, 0.0] for i in range(4)},
        **{f"p{i}": [float(np.cos(a)), float(np.sin(a))] for i, a in angles.items()},
    }
    kept, report = clean(rows, _lookup(table), min_score=0.6)
    assert [r.query for r in kept] == ["q0", "q1"] and report.below_score == 2 and report.score_cut == 0.6
    kept, report = clean(rows, _lookup(table), drop_percentile=50)
    assert [r.query for r in kept] == ["q0", "q1"] and report.rows_out == 2
    assert report.score_cut == pytest.approx(float(np.percentile([np.cos(a) for a in angles.values()], 50)), abs=1e-6)


def test_floor_errors_name_the_fix():
    rows = [RetrievalRow("q", "p")]
    with pytest.raises(InvalidOptionError, match="not both"):
        clean(rows, _lookup({}), min_score=0.1, drop_percentile=5)
    with pytest.raises(InvalidOptionError, match="needs an embedding model"):
        clean(rows, min_score=0.1)
    with pytest.raises(InvalidOptionError, match="two sides"):
        clean([ClassificationRow("t", 1)], _lookup({"t": [1.0]}), min_score=0.1)


def test_clean_command_writes_rows_and_a_report(tmp_path):
    import json

    from qzhou_eval.cli.main import main
    from qzhou_eval.train.data.readers import read_rows

    source = tmp_path / "rows.jsonl"
    rows = [
        {"text_a": "A man plays a guitar.", "text_b": "Someone plays music.", "score": 3.2},
        {"text_a": "Someone plays music.", "text_b": "A man plays a guitar.", "score": 3.2},
        {"text_a": "A dog runs.", "text_b": "A cat sleeps.", "score": 0.4},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "clean.jsonl"
    assert main(["clean", "--input", str(source), "--kind", "pair", "--out", str(out), "-q"]) == 0
    assert [r.text_a for r in read_rows(out, "pair")] == ["A man plays a guitar.", "A dog runs."]
    report = json.loads((tmp_path / "clean.jsonl.report.json").read_text())
    assert report["exact_duplicates"] == 1 and report["rows_out"] == 2  # a swapped pair is the same pair
