"""Hard-negative mining against a brute-force reference, the retrieval-folder reader, and ``qzhou-eval mine``."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.data.retrieval_folder import RetrievalData, read_retrieval_folder
from qzhou_eval.train.mining import MiningConfig, mine


def _hashed(texts: list[str]) -> np.ndarray:
    """Deterministic 16-dim vectors seeded by each text (a stand-in model: no ties, no weights)."""
    return np.stack(
        [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=16) for t in texts]
    ).astype(np.float32)


def _brute_force(data: RetrievalData, config: MiningConfig) -> dict[tuple[str, str], list[str]]:
    """The rule on the full score matrix: (query id, positive id) -> kept negative ids."""
    q = _hashed(list(data.queries.values()))
    d = _hashed(list(data.corpus.values()))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    scores, doc_ids, out = q @ d.T, list(data.corpus), {}
    for row, qid in enumerate(data.queries):
        positives = set(data.relevant[qid])
        window = [i for i in np.argsort(-scores[row]) if doc_ids[i] not in positives][
            config.range_min : config.range_max
        ]
        for pid in data.relevant[qid]:
            ceiling = config.margin * scores[row, doc_ids.index(pid)]
            kept = [doc_ids[i] for i in window if config.margin == 0 or scores[row, i] < ceiling]
            if len(kept) >= config.num_negatives:
                out[(qid, pid)] = kept[: config.num_negatives]
    return out


@pytest.fixture(scope="module")
def scifact_test(shared_dir) -> RetrievalData:
    return read_retrieval_folder(shared_dir / "mteb-data" / "SciFact", "test")


def test_reader_reads_the_mteb_layout(shared_dir, scifact_test):
    train = read_retrieval_folder(shared_dir / "mteb-data" / "SciFact", "train")
    assert (len(train.corpus), len(train.queries), sum(map(len, train.relevant.values()))) == (5183, 809, 919)
    assert (len(scifact_test.queries), sum(map(len, scifact_test.relevant.values()))) == (300, 339)
    assert train.corpus is not None and all(text.strip() for text in train.corpus.values())


@pytest.mark.parametrize("margin", [0.95, 0.0])
def test_chunked_mining_equals_brute_force(scifact_test, margin):
    config = MiningConfig(range_min=3, range_max=12, margin=margin, num_negatives=4, corpus_chunk=97, query_chunk=7)
    rows, report = mine(scifact_test, _hashed, _hashed, config, progress=False)
    expected = _brute_force(scifact_test, config)
    assert {(r.query_id, r.positive_id): r.negative_ids for r in rows} == expected
    assert report.rows == len(expected) and report.rows + report.rows_short == 339
    assert report.candidates == 339 * 9, "every pair sees the 9 candidates of ranks 4..12"
    if margin == 0:
        assert report.removed_by_filter == 0 and report.rows_short == 0
    else:
        assert report.removed_by_filter > 0
        for r in rows:
            assert all(s < margin * r.positive_score for s in r.negative_scores), "the filter is applied"
    for r in rows:
        assert r.positive_id not in r.negative_ids and not set(r.negative_ids) & set(scifact_test.relevant[r.query_id])
        assert r.negatives == [scifact_test.corpus[d] for d in r.negative_ids]


def test_bad_windows_are_refused():
    with pytest.raises(InvalidOptionError, match="range_min"):
        MiningConfig(range_min=30, range_max=10).check()
    with pytest.raises(InvalidOptionError, match="widen the window"):
        MiningConfig(range_min=10, range_max=12, num_negatives=4).check()


def _beir_folder(root, scifact_test, queries: int = 12):
    """A small corpus in BEIR's plain-file layout (TSV qrels) cut from SciFact's test split."""
    picked = list(scifact_test.queries)[:queries]
    docs = {d for q in picked for d in scifact_test.relevant[q]} | set(list(scifact_test.corpus)[:60])
    (root / "qrels").mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": d, "title": "", "text": scifact_test.corpus[d]}) + "\n" for d in sorted(docs))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": scifact_test.queries[q]}) + "\n" for q in picked)
    )
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q in picked for d in scifact_test.relevant[q])
    )
    return root, len(picked)


def test_mine_command_writes_rows_the_trainer_reads(tmp_path, minilm_path, scifact_test):
    from qzhou_eval.cli.main import main
    from qzhou_eval.train.data.readers import read_rows

    folder, n = _beir_folder(tmp_path / "beir", scifact_test)
    out = tmp_path / "mined.jsonl"
    assert (
        main(
            [
                "mine",
                "--model",
                minilm_path,
                "--data_dir",
                str(folder),
                "--out",
                str(out),
                "--range_min",
                "2",
                "--range_max",
                "10",
                "--num_negatives",
                "2",
                "-q",
            ]
        )
        == 0
    )
    rows = read_rows(out, "retrieval")
    report = json.loads((tmp_path / "mined.jsonl.report.json").read_text())
    assert len(rows) == report["rows"] > 0 and report["queries"] == n
    assert all(len(r.negatives) == 2 for r in rows)
    first = json.loads(out.read_text().splitlines()[0])
    assert {"query_id", "positive_id", "negative_ids"} <= set(first)


def test_missing_qrels_name_the_layouts(tmp_path, scifact_test):
    folder, _ = _beir_folder(tmp_path / "beir", scifact_test)
    with pytest.raises(InvalidOptionError, match="qrels/dev.jsonl"):
        read_retrieval_folder(folder, "dev")


def test_score_floor_drops_mismatched_pairs_under_a_real_model(minilm_path, shared_dir):
    """SciFact claims with their evidence, 5 of 20 given another claim's evidence: the floor finds those 5."""
    from qzhou_eval.api import load_encoder
    from qzhou_eval.train.cleaning import clean
    from qzhou_eval.train.data.schema import RetrievalRow

    data = read_retrieval_folder(shared_dir / "mteb-data" / "SciFact", "train")
    claims = list(data.queries)[:20]
    evidence = [data.corpus[data.relevant[q][0]][:600] for q in claims]
    swapped = evidence[5:10] + evidence[:5] + evidence[10:]  # rows 0-4 and 5-9 get each other's evidence
    rows = [RetrievalRow(data.queries[q], e) for q, e in zip(claims, swapped)]
    encoder = load_encoder(minilm_path)
    kept, report = clean(rows, encoder.encode, drop_percentile=50)
    assert report.below_score == 10 and report.rows_out == 10
    assert sum(r.query in {data.queries[q] for q in claims[10:]} for r in kept) >= 9, "true pairs survive the floor"
