"""The cache stores a vector at the precision it holds (bf16 where exact) and always reads back what was written."""

import shutil
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qzhou_eval.encoder.cache import TABLE, EmbeddingCache, checksum, model_key, narrowed, widened
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.runs.results_io import read_task_result
from qzhou_eval.runs.runner import RunConfig, run_suite

_FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _bf16_exact(values: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (they are then exactly representable in it)."""
    import torch

    return torch.from_numpy(values).to(torch.bfloat16).float().numpy()


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=_FLOATS), st.booleans())
def test_every_vector_reads_back_bit_for_bit_and_bf16_ones_take_half(values, round_to_bf16):
    vector = _bf16_exact(values) if round_to_bf16 else values
    blob = narrowed(vector)
    back = widened(blob, len(vector))
    assert back.dtype == np.float32
    assert back.view(np.uint32).tolist() == vector.view(np.uint32).tolist()  # bit-identical, -0.0 included
    exact = np.array_equal(_bf16_exact(vector).view(np.uint32), vector.view(np.uint32))
    assert len(blob) == (2 if exact else 4) * len(vector)


def test_a_float32_cache_written_before_the_bf16_layout_still_reads(tmp_path):
    path, digest = tmp_path / "emb.sqlite", model_key({"model": "old"})
    cache = EmbeddingCache(path, digest)
    key = cache.keys(["an old text"])[0]
    vector = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    blob = vector.tobytes()  # what every earlier version wrote: float32, whatever the model's dtype
    with sqlite3.connect(path) as db:
        db.execute(
            f"INSERT INTO {TABLE} (key, dim, vec, checksum, session) VALUES (?, ?, ?, ?, ?)",
            (key, 16, blob, checksum(key, 16, blob), "old"),
        )
    found = EmbeddingCache(path, digest).get_many([key], EncodeStats())
    assert found[key].tolist() == vector.tolist()


def test_a_bf16_run_stores_half_size_vectors_and_a_rerun_from_the_cache_scores_the_same(
    minilm_path, shared_dir, tmp_path
):
    out = tmp_path / "bf16"
    config = dict(
        model_name_or_path=minilm_path,
        benchmark=None,
        output_dir=out,
        tasks=["STSBenchmark"],
        data_dir=shared_dir / "mteb-data",
        encoder_options={"dtype": "bfloat16"},
        predictions=False,
    )
    first = run_suite(RunConfig(**config))
    cache_file = out / ".embedding_cache" / "embeddings.sqlite"
    with sqlite3.connect(cache_file) as db:
        sizes = {(dim, len(blob)) for dim, blob in db.execute(f"SELECT dim, vec FROM {TABLE}")}
    assert sizes == {(384, 768)}  # MiniLM normalises in bf16: every vector is bf16 exactly, 2 bytes a value
    scored = next(out.glob("results/*/*/STSBenchmark.json"))
    score = read_task_result(scored).get_score()
    shutil.rmtree(out / "results")
    shutil.rmtree(out / ".qzhou")
    again = run_suite(RunConfig(**config))
    assert again.encode_stats.encoded == 0 and again.encode_stats.reused_earlier > 0
    assert again.scores["STSBenchmark"] == first.scores["STSBenchmark"] == pytest.approx(score, abs=0)
