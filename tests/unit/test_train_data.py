import json

import pandas as pd
import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.data import ClassificationRow, DataKind, PairRow, RetrievalRow
from qzhou_eval.train.data.readers import read_rows
from qzhou_eval.train.data.transforms import (
    claim_to_evidence,
    classification_examples,
    pair_scores,
    qa_pairs,
    title_to_body,
)


def test_read_jsonl_and_parquet(tmp_path):
    rows = [{"query": "q1", "positive": "p1", "negatives": ["n1"]}, {"query": "q2", "positive": "p2"}]
    (tmp_path / "msmarco.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = read_rows(tmp_path / "msmarco.jsonl", "retrieval", instruction="Find passages")
    assert got == [
        RetrievalRow("q1", "p1", ["n1"], "Find passages", "msmarco"),
        RetrievalRow("q2", "p2", [], "Find passages", "msmarco"),
    ]
    pd.DataFrame([{"text_a": "a", "text_b": "b", "score": 4}]).to_parquet(tmp_path / "sts.parquet")
    assert read_rows(tmp_path / "sts.parquet", "sts") == [PairRow("a", "b", 4.0, "sts")]


def test_read_from_a_datasets_dataset():
    import datasets

    ds = datasets.Dataset.from_list([{"text": "good", "label": 1}, {"text": "bad", "label": 0}])
    got = read_rows(ds, "classification", dataset="reviews")
    assert got == [ClassificationRow("good", 1, "reviews"), ClassificationRow("bad", 0, "reviews")]


@pytest.mark.parametrize(
    "content,match",
    [
        ('{"query": "q", "positive": "p"}\n{"query": "q"}\n', r"data.jsonl:2: retrieval row needs 'positive'"),
        ('{"query": "q", "positive": "p"}\n{not json\n', r"data.jsonl:2: not valid JSON"),
        ('{"query": "", "positive": "p"}\n', r"data.jsonl:1: retrieval row has an empty 'query'"),
        ('{"query": "q", "positive": "p", "negatives": "n"}\n', r"data.jsonl:1: 'negatives' must be a list"),
        ("\n", "holds no rows"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, content, match):
    (tmp_path / "data.jsonl").write_text(content)
    with pytest.raises(InvalidOptionError, match=match):
        read_rows(tmp_path / "data.jsonl", "retrieval")


def test_unknown_kind_and_missing_file(tmp_path):
    with pytest.raises(InvalidOptionError, match="'ranking' is not a valid data kind"):
        DataKind.from_str("ranking")
    with pytest.raises(InvalidOptionError, match="does not exist"):
        read_rows(tmp_path / "none.jsonl", "retrieval")


def test_source_transforms():
    assert title_to_body([{"title": "T", "body": "x" * 50}], "arxiv", "I", max_chars=10) == [
        RetrievalRow("T", "x" * 10, [], "I", "arxiv")
    ]
    fever = [
        {"claim": "c", "evidence": "e1", "label": "SUPPORTS"},
        {"claim": "c", "evidence": "e2", "label": "REFUTES"},
        {"claim": "d", "evidence": "e3", "label": "REFUTES"},
    ]
    assert claim_to_evidence(fever, "fever", "I") == [RetrievalRow("c", "e1", ["e2"], "I", "fever")]
    assert qa_pairs([{"question": "q", "answer": "a"}], "qa", "I") == [RetrievalRow("q", "a", [], "I", "qa")]


@pytest.mark.parametrize(
    "label,score",
    [
        ("yes", 1.0),
        ("False", 0.0),
        ("entailment", 2.0),
        ("neutral", 1.0),
        ("contradiction", 0.0),
        (3.5, 3.5),
        ("4", 4.0),
    ],
)
def test_pair_labels_and_swaps(label, score):
    rows = pair_scores([{"sentence1": "a", "sentence2": "b", "score": label}], "nli", "I")
    assert rows == [PairRow("a", "b", score, "nli", "I"), PairRow("b", "a", score, "nli", "I")]


def test_pair_label_error():
    with pytest.raises(InvalidOptionError, match="neither numeric"):
        pair_scores([{"sentence1": "a", "sentence2": "b", "score": "maybe"}], "nli", "I")


def test_classification_examples():
    rows = [
        ClassificationRow(t, lab, "tnews", "Classify")
        for t, lab in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B"), ("c1", "C")]
    ]
    out = classification_examples(rows, negatives=2)
    assert len(out) == 4, "c1 has no same-label positive and is skipped"
    for ex in out:
        assert ex.positive != ex.query and ex.positive[0] == ex.query[0]
        assert all(n[0] != ex.query[0] for n in ex.negatives) and len(ex.negatives) == 2
        assert ex.label == ex.query[0].upper()
    with pytest.raises(InvalidOptionError, match="has a single label"):
        classification_examples([ClassificationRow("x", 1, "d"), ClassificationRow("y", 1, "d")])


class _RecordingTokenizer:
    """Records the exact strings training hands the tokenizer."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts, truncation, max_length):
        self.seen.extend(texts)
        return {"input_ids": [[1] for _ in texts], "attention_mask": [[1] for _ in texts]}

    def pad(self, features, padding, return_tensors):
        import torch

        ones = torch.ones(len(features), 1, dtype=torch.long)
        return {"input_ids": ones, "attention_mask": ones}


def test_training_and_evaluation_give_a_task_the_same_prefixes(tmp_path):
    from qzhou_eval.encoder.inputs import InputFormatter
    from qzhou_eval.instructions.registry import load_benchmark_instructions, route_prefix
    from qzhou_eval.train.collate import Collator
    from qzhou_eval.train.datasets import load_training_sets, training_instructions

    retrieval = tmp_path / "scifact.jsonl"
    retrieval.write_text('{"query": "a claim", "positive": "an abstract", "negatives": ["other"]}\n' * 2)
    pairs = tmp_path / "sts.jsonl"
    pairs.write_text('{"text_a": "one", "text_b": "two", "score": 3.0}\n' * 2)
    config = TrainConfig(
        model="m",
        output_dir=str(tmp_path / "out"),
        stage=2,
        max_steps=1,
        hard_negatives=1,
        instructions="MTEB(eng, v2)@leaderboard-2025-08",
        datasets=[
            {"name": "FiQA2018", "path": str(retrieval), "kind": "retrieval"},
            {"name": "STSBenchmark", "path": str(pairs), "kind": "pair"},
        ],
    )
    evaluation = load_benchmark_instructions("MTEB(eng, v2)", "leaderboard-2025-08")
    instructions = training_instructions(config.instructions)
    sets = {s.name: s for s in load_training_sets(config, instructions)}
    tokenizer = _RecordingTokenizer()
    collate = Collator(tokenizer, InputFormatter(None), 32, 32, 1, instructions.template)

    collate([(sets["FiQA2018"], row) for row in sets["FiQA2018"].rows])
    query, document = (route_prefix(evaluation, "FiQA2018", side, True) for side in ("query", "document"))
    assert query.startswith("Instruct: ") and document == "", "FiQA2018 instructs its questions only"
    assert tokenizer.seen == [query + "a claim"] * 2 + [document + "an abstract"] * 2 + [document + "other"] * 2

    tokenizer.seen.clear()
    collate([(sets["STSBenchmark"], row) for row in sets["STSBenchmark"].rows])
    sts = route_prefix(evaluation, "STSBenchmark", None, True)  # mteb gives STS inputs no prompt type
    assert sts.startswith("Instruct: ") and tokenizer.seen == [sts + "one"] * 2 + [sts + "two"] * 2


def test_a_dataset_named_like_a_task_cannot_train_with_another_instruction(tmp_path):
    from qzhou_eval.train.datasets import load_training_sets

    data = tmp_path / "d.jsonl"
    data.write_text('{"query": "q", "positive": "p"}\n')
    config = TrainConfig(
        model="m",
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        instructions="MTEB(eng, v2)",
        datasets=[{"name": "FiQA2018", "path": str(data), "kind": "retrieval", "instruction": "Find it"}],
    )
    with pytest.raises(InvalidOptionError, match="evaluates task FiQA2018 with"):
        load_training_sets(config)
