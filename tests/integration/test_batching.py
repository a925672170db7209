"""Token-budget batching: every text once, budget and row cap respected, and embeddings that do not
depend on how the texts were batched (float32, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from qzhou_eval.encoder import batching
from qzhou_eval.encoder.batching import BatchPlan, prefetched
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.options import Batching


@pytest.fixture(scope="module")
def minilm_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def test_plan_covers_every_text_once_within_budget_and_row_cap(monkeypatch, minilm_tokenizer, varied_texts):
    monkeypatch.setattr(batching, "CHUNK_TEXTS", 5)  # several chunks, so leftovers are carried over
    texts = varied_texts * 3
    plan = BatchPlan(minilm_tokenizer, texts, 64, Batching(max_rows=7, max_tokens=200))
    batches = list(plan)
    rows = sorted(r for b in batches for r in b.rows)
    assert rows == list(range(len(texts))), "every text in exactly one batch"
    for b in batches:
        padded = b.features["input_ids"].shape
        assert padded[0] <= 7, f"row cap broken: {padded}"
        assert padded[0] * padded[1] <= 200 or padded[0] == 1, f"token budget broken: {padded}"
    assert plan.truncated == sum(len(minilm_tokenizer(t)["input_ids"]) > 64 for t in texts)
    assert max(b.features["input_ids"].shape[0] for b in batches) > 3, "short texts share a batch"


@pytest.mark.parametrize("max_tokens", [0, 200])
def test_batches_padded_to_a_multiple_keep_the_budget_and_every_text(minilm_tokenizer, varied_texts, max_tokens):
    """--pad_to_multiple_of: each batch's width is a multiple of it, and the budget counts the padded width."""
    plan = BatchPlan(
        minilm_tokenizer, varied_texts, 64, Batching(max_rows=7, max_tokens=max_tokens, pad_to_multiple_of=16)
    )
    batches = list(plan)
    assert sorted(r for b in batches for r in b.rows) == list(range(len(varied_texts)))
    for b in batches:
        rows, width = b.features["input_ids"].shape
        assert width % 16 == 0, f"width {width} is not a multiple of 16"
        assert max_tokens == 0 or rows * width <= max_tokens or rows == 1, f"token budget broken: {rows}x{width}"


def test_reference_plan_is_the_reference_order_in_fixed_batches(minilm_tokenizer, varied_texts):
    batches = list(BatchPlan(minilm_tokenizer, varied_texts, 512, Batching(max_rows=4, max_tokens=0)))
    order = [r for b in batches for r in b.rows]
    assert order == np.argsort([-len(t) for t in varied_texts]).tolist(), "np.argsort of -len, as the reference"
    assert [len(b.rows) for b in batches][:-1] == [4] * (len(batches) - 1)


def test_an_empty_share_tokenises_to_nothing(minilm_tokenizer):
    """A data-parallel rank can get no texts in a short call (fast tokenizers fail on an empty list)."""
    assert batching.token_lengths(minilm_tokenizer, [], 16) == []
    empty = batching.tokenize(minilm_tokenizer, [], 16)
    assert empty.input_ids == [] and empty.truncated == 0


def test_background_errors_reach_the_consumer():
    def broken():
        yield 1
        raise ValueError("tokenizer exploded")

    got = []
    with pytest.raises(ValueError, match="tokenizer exploded"):
        for item in prefetched(broken()):
            got.append(item)
    assert got == [1]


def test_a_consumer_that_stops_early_stops_the_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in prefetched(endless(), depth=2):
        if item == 3:
            break
    count = len(produced)
    assert count <= 3 + 4, "the producer ran far ahead of the consumer"


@pytest.mark.parametrize("model", ["minilm", "qwen2_bidirectional_mean", "qwen3_last"])
def test_embeddings_do_not_depend_on_the_batching(model, request, varied_texts):
    from qzhou_eval import load_encoder

    path, options = {
        "minilm": (request.getfixturevalue("minilm_path"), {}),
        "qwen2_bidirectional_mean": (request.getfixturevalue("tiny_qwen2"), {"bidirectional": True, "pooling": "mean"}),
        "qwen3_last": (request.getfixturevalue("tiny_qwen3"), {"pooling": "last"}),
    }[model]
    texts = varied_texts + ["", "a", "a b c"]
    runs = {}
    for label, batching_options in {
        "reference, 32 texts": {"max_tokens_per_batch": 0},
        "reference, 3 texts": {"max_tokens_per_batch": 0, "batch_size": 3},
        "budget 128 tokens": {"max_tokens_per_batch": 128},
        "budget 4096 tokens": {"max_tokens_per_batch": 4096},
        "budget 256 tokens, padded to multiples of 64": {"max_tokens_per_batch": 256, "pad_to_multiple_of": 64},
        "one text per batch": {"max_tokens_per_batch": 128, "batch_size": 1},
    }.items():
        encoder = load_encoder(str(path), max_length=128, preset="none", **options, **batching_options)
        runs[label] = encoder.encode(texts)
    base = runs.pop("one text per batch")
    for label, vectors in runs.items():
        assert np.abs(vectors - base).max() < 2e-5, (
            f"{model}: {label} differs from unbatched by {np.abs(vectors - base).max():.2e}"
        )


def test_a_budget_below_max_length_names_both_numbers(minilm_path):
    from qzhou_eval import load_encoder

    with pytest.raises(InvalidOptionError, match=r"max_tokens_per_batch=100 .* max_length=256"):
        load_encoder(minilm_path, max_length=256, max_tokens_per_batch=100)


def test_pad_to_multiple_of_is_refused_where_nothing_is_padded(minilm_path):
    from qzhou_eval import load_encoder

    with pytest.raises(InvalidOptionError, match=r"--backend vllm cannot take --pad_to_multiple_of"):
        load_encoder(minilm_path, backend="vllm", pad_to_multiple_of=8)
    with pytest.raises(InvalidOptionError, match="pad_to_multiple_of=8 was given with batching='reference'"):
        load_encoder(minilm_path, batching="reference", pad_to_multiple_of=8)


def test_the_encoder_counts_real_and_computed_tokens(minilm_path, minilm_tokenizer, varied_texts):
    from qzhou_eval import load_encoder

    encoder = load_encoder(minilm_path)  # the reference policy's counts: test_reference_batching.py
    texts = varied_texts + varied_texts[:5]  # repeats are encoded once
    encoder.encode(texts)
    rows = list(dict.fromkeys(texts))
    real = sum(min(len(minilm_tokenizer(t)["input_ids"]), 256) for t in rows)
    stats = encoder.stats
    assert stats.tokens == real and stats.padded_tokens >= real and stats.encode_s > 0
    assert 0 < stats.token_efficiency <= 1 and f"{stats.tokens} tokens in {stats.padded_tokens} computed" in (
        stats.describe()
    )
    padded = load_encoder(minilm_path, pad_to_multiple_of=64)
    padded.encode(texts)
    assert padded.stats.tokens == real and padded.stats.padded_tokens > stats.padded_tokens, "the padding is counted"
    assert padded.resolution.as_record()["pad_to_multiple_of"] == {"value": 64, "source": "explicit"}
