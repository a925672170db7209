"""Real model, real data: all-MiniLM-L6-v2 against sentence-transformers' own encode, and through mteb."""

import logging

import numpy as np
import pytest

from qzhou_eval import load_encoder


@pytest.fixture(scope="module")
def encoder(minilm_path):
    return load_encoder(minilm_path)


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_parity_with_sentence_transformers(encoder, minilm_path, sts_sentences):
    from sentence_transformers import SentenceTransformer

    texts = sts_sentences[:400]
    reference = SentenceTransformer(minilm_path, device="cpu").encode(texts, batch_size=32)
    ours = encoder.encode(texts)
    assert ours.dtype == np.float32 and ours.shape == (400, 384)
    cos = _cos(ours, reference)
    assert cos.min() >= 0.99999, f"min cosine to sentence-transformers {cos.min():.7f}"


def test_padding_and_batch_invariance(encoder, varied_texts):
    alone = np.stack([encoder.encode([t])[0] for t in varied_texts[:4]])
    # Short texts placed in batches dominated by much longer texts (heavy left padding).
    mixed = encoder.encode(varied_texts, batch_size=len(varied_texts))
    assert np.abs(mixed[:4] - alone).max() <= 1e-5, "embedding changed with padding / batch company"
    small = encoder.encode(varied_texts, batch_size=3)
    assert np.abs(small - mixed).max() <= 1e-5, "embedding changed with batch size"


def test_input_order_is_kept(encoder, varied_texts):
    forward = encoder.encode(varied_texts)
    backward = encoder.encode(varied_texts[::-1])
    assert np.abs(forward[::-1] - backward).max() <= 1e-5


def test_instruction_prefix_and_null(encoder):
    with_instruction = encoder.encode(["a cat"], instruction="Retrieve semantically similar text")
    by_hand = encoder.encode(["Instruct: Retrieve semantically similar text\nQuery: a cat"])
    assert np.abs(with_instruction - by_hand).max() <= 1e-6
    assert np.abs(encoder.encode([""]) - encoder.encode(["Null"])).max() <= 1e-6


def test_truncation_is_counted(encoder, caplog):
    long = "word " * 2000
    with caplog.at_level(logging.WARNING, logger="qzhou_eval"):
        out = encoder.encode([long, "short", long + "end"])
    assert out.shape == (3, 384)
    assert any("2 of 3 distinct text(s) are longer than max_length=256" in r.message for r in caplog.records)


def test_mrl_dim_on_a_real_model(minilm_path):
    full = load_encoder(minilm_path, normalize=False).encode(["a dog runs"])
    cut = load_encoder(minilm_path, dim=128).encode(["a dog runs"])
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    assert cut.shape == (1, 128)
    assert np.abs(cut - expected).max() <= 1e-6


def test_empty_input_list(encoder):
    assert encoder.encode([]).shape == (0, 384)


def test_mteb_sts_benchmark_end_to_end(encoder, shared_dir):
    """Through mteb 2.x's own evaluation, offline: the leaderboard value is 0.8203."""
    import mteb

    from qzhou_eval.encoder.mteb_model import QZhouMtebModel
    from qzhou_eval.runs.offline import attach_data_dir

    model = QZhouMtebModel(encoder, None, use_instruction=False, model_name="sentence-transformers/all-MiniLM-L6-v2")
    task = mteb.get_task("STSBenchmark")
    attach_data_dir([task], shared_dir / "mteb-data")  # this task object only (mteb shares metadata objects)
    result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False)
    score = result.task_results[0].get_score()
    assert score == pytest.approx(0.8203, abs=0.002), f"STSBenchmark main score drifted: {score}"


def test_a_max_length_beyond_the_position_table_is_capped_once_for_record_and_cache(minilm_path, tmp_path):
    from qzhou_eval.resolution.resolve import resolve
    from qzhou_eval.runs.config import RunConfig

    encoder = load_encoder(minilm_path, max_length=1000)  # BERT: 512 learned positions
    assert encoder.options.max_length == 512 and encoder.identity()["options"]["max_length"] == 512
    assert encoder.resolution.source("max_length") == (
        "checkpoint: config.json max_position_embeddings (asked 1000: explicit)"
    )
    config = RunConfig(
        model_name_or_path=minilm_path,
        benchmark=None,
        tasks=["STSBenchmark"],
        output_dir=tmp_path,
        encoder_options={"max_length": 1000},
    )
    assert resolve(config.request(["STSBenchmark"])).inputs.options["max_length"] == 512, "the record: as the cache"
