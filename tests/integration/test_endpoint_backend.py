"""The endpoint backend (--backend openai) against a scripted stub server: retries, refusals, bad answers,
replicas, resume, and the check against local weights. The real-server test is test_endpoint_vllm.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from embeddings_stub import EmbeddingsStub, stub_vector

from qzhou_eval import load_encoder
from qzhou_eval.encoder.endpoint_backend import plan_requests
from qzhou_eval.errors import EmbeddingError, EndpointError, EndpointMismatch, InvalidOptionError
from qzhou_eval.options import Batching
from qzhou_eval.remote.endpoint import EndpointSettings

TEXTS = [f"text number {i} " + "word " * (i % 7) for i in range(40)]


def _settings(*urls: str, **kw) -> EndpointSettings:
    kw.setdefault("backoff_s", 0.01)
    return EndpointSettings(tuple(urls), **kw)


def _expected(texts: list[str], width: int) -> np.ndarray:
    rows = np.stack([stub_vector(t, width) for t in texts])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_transient_failures_are_retried_counted_and_answers_kept():
    script = {1: 429, 2: 500, 3: 503, 4: ("stall", 3.0)}.get
    with EmbeddingsStub(script=lambda n, texts: script(n)) as stub:
        enc = load_encoder(None, backend="openai", endpoint=_settings(stub.url, timeout_s=1.0), batch_size=8)
        out = enc.encode(TEXTS)
    np.testing.assert_allclose(out, _expected(TEXTS, 8), atol=1e-6)
    assert enc.backend.client.retries == {"rate_limited": 1, "server_error": 2, "timeout": 1}
    assert enc.backend.client.describe()["requests"] == stub.requests + 1  # every request counted: GET /models, retries


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ("wrong_width", EndpointError, "7-dimensional embeddings where 8 were expected"),
        ("nan", EmbeddingError, "NaN/inf"),
        ("wrong_model", EndpointError, "answered as model 'someone/else'"),
        ("short", EndpointError, "returned 7 embedding"),
        (400, EndpointError, "refused the request: HTTP 400"),
    ],
)
def test_a_bad_answer_stops_the_encoder_naming_the_server(bad, error, words):
    with EmbeddingsStub(script=lambda n, texts: bad if n == 2 else None) as stub:
        enc = load_encoder(None, backend="openai", endpoint=_settings(stub.url), batch_size=8)
        with pytest.raises(error, match=words) as caught:
            enc.encode(TEXTS)
    assert stub.url in str(caught.value)


def test_persistent_failure_gives_up_after_the_retries():
    with EmbeddingsStub(script=lambda n, texts: 502 if n >= 1 else None) as stub:
        enc = load_encoder(None, backend="openai", endpoint=_settings(stub.url, max_retries=2), batch_size=8)
        with pytest.raises(EndpointError, match="server_error after 2 retries.*rerunning the same command resumes"):
            enc.encode(TEXTS)


def test_requests_go_round_robin_over_replicas():
    with EmbeddingsStub() as one, EmbeddingsStub() as two:
        enc = load_encoder(None, backend="openai", endpoint=_settings(one.url, two.url, concurrency=2), batch_size=4)
        out = enc.encode(TEXTS)
    np.testing.assert_allclose(out, _expected(TEXTS, 8), atol=1e-6)
    assert len(one.answered) >= 5 and len(two.answered) >= 5
    assert one.answered_texts.isdisjoint(two.answered_texts)  # each request went to one replica


def test_a_killed_run_resumes_without_asking_for_anything_it_cached(tmp_path):
    cache = tmp_path / "embeddings.sqlite"
    # the first server dies after 4 good answers (every later request fails, no retries)
    with EmbeddingsStub(script=lambda n, texts: 500 if n > 4 else None) as dying:
        enc = load_encoder(
            None, backend="openai", endpoint=_settings(dying.url, max_retries=0, concurrency=1), batch_size=4
        )
        enc.attach_cache(cache)
        with pytest.raises(EndpointError):
            enc.encode(TEXTS)
        enc.cache.close()
    kept = dying.answered_texts - {"Null"}  # request 0 is the probe at start-up
    assert len(kept) == 16
    with EmbeddingsStub() as fresh:
        enc = load_encoder(None, backend="openai", endpoint=_settings(fresh.url), batch_size=4)
        enc.attach_cache(cache)
        out = enc.encode(TEXTS)
    asked = fresh.answered_texts - {"Null"}
    assert asked.isdisjoint(kept), "a cached embedding was requested again"
    assert asked | kept == set(TEXTS)
    np.testing.assert_allclose(out, _expected(TEXTS, 8), atol=1e-6)


def test_server_discovery_errors_name_the_fix():
    with EmbeddingsStub() as stub:
        with pytest.raises(EndpointError, match="does not serve 'other/model'.*--served_model"):
            load_encoder(None, backend="openai", endpoint=_settings(stub.url, served_model="other/model"))
    with pytest.raises(InvalidOptionError, match="must start with http"):
        _settings("localhost:8000/v1")
    with pytest.raises(InvalidOptionError, match="API_KEY_NOT_SET_ANYWHERE"):
        _settings("http://127.0.0.1:9/v1", api_key_env="API_KEY_NOT_SET_ANYWHERE").api_key()


def test_max_length_beyond_the_servers_context_is_refused():
    with EmbeddingsStub(max_model_len=128) as stub:
        with pytest.raises(InvalidOptionError, match="--max-model-len 256"):
            load_encoder(None, backend="openai", endpoint=_settings(stub.url), max_length=256)
        enc = load_encoder(None, backend="openai", endpoint=_settings(stub.url))
    assert enc.options.max_length == 128  # unset: the server's context


def test_the_check_against_local_weights_stops_a_different_model(minilm_path):
    with EmbeddingsStub(width=384) as stub:
        enc = load_encoder(minilm_path, backend="openai", endpoint=_settings(stub.url))
        with pytest.raises(EndpointMismatch, match="cosine below the floor 0.999 on 4 of 4"):
            enc.encode(TEXTS[:10], instruction="Retrieve a passage")
        assert stub.requests == 2  # the probe and the check: nothing was encoded for the run
        with pytest.raises(InvalidOptionError, match="--verify_endpoint 0"):
            load_encoder(None, backend="openai", endpoint=_settings(stub.url, verify_texts=4))


def test_plan_requests_keeps_the_budget_and_every_row():
    lengths = [5, 300, 17, 17, 900, 1, 64, 250]
    plan = plan_requests(lengths, Batching(max_rows=3, max_tokens=1000))
    assert sorted(r for rows in plan for r in rows) == list(range(len(lengths)))
    assert all(len(rows) <= 3 for rows in plan)
    assert all(sum(lengths[r] for r in rows) <= 1000 or len(rows) == 1 for rows in plan)


def test_a_run_through_a_server_without_local_weights(tmp_path, shared_dir):
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    with EmbeddingsStub(model="org/served-embedder", width=16) as stub:
        argv = [
            "--backend",
            "openai",
            "--base_url",
            stub.url,
            "--tasks",
            "STSBenchmark",
            "--data_dir",
            str(shared_dir / "mteb-data"),
            "--output_dir",
            str(tmp_path),
        ]
        assert main_for_benchmark("MTEB(eng, v2)", argv) == 0
        first = stub.requests
        assert main_for_benchmark("MTEB(eng, v2)", argv) == 0  # finished: nothing is encoded again
        assert stub.requests == first  # no embedding request at all
    folder = tmp_path / "results" / "org__served-embedder" / "no_revision_available"
    assert (folder / "STSBenchmark.json").is_file()
    (manifest_file,) = tmp_path.glob("qzhou-run-*.json")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["backend"] == "openai"
    assert manifest["endpoint"]["weights"].startswith("not hashed")
    assert manifest["endpoint"]["reported"][stub.url]["root"] == "/weights/stub"
    assert manifest["inputs"]["options"]["served_by"] == "endpoint org/served-embedder"
    assert manifest["inputs"]["options"]["max_length"] == 512, "the record holds the server's length, as the cache"
    assert manifest["resolved_options"]["max_length"]["source"].startswith("the server's max_model_len")
    for decided in ("pooling", "bidirectional", "dtype", "trust_remote_code"):  # never recorded as explicit
        assert manifest["resolved_options"][decided]["source"].startswith("the server's (expected: "), decided
    with EmbeddingsStub(model="org/served-embedder", width=16) as stub:
        refused = [*argv[:3], stub.url, *argv[4:], "--pooling_mode", "cls"]
        assert main_for_benchmark("MTEB(eng, v2)", refused) == 2, "an explicit option the server decides"
        assert stub.requests == 0, "refused before any embedding request"


def test_a_run_against_a_server_that_is_not_the_checkpoint_stops_before_any_result(
    minilm_path, shared_dir, tmp_path, capsys
):
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    with EmbeddingsStub(width=384) as stub:
        argv = [
            "--backend",
            "openai",
            "--base_url",
            stub.url,
            "--model_name_or_path",
            minilm_path,
            "--tasks",
            "STSBenchmark",
            "--data_dir",
            str(shared_dir / "mteb-data"),
            "--output_dir",
            str(tmp_path),
        ]
        assert main_for_benchmark("MTEB(eng, v2)", argv) == 2
    err = capsys.readouterr().err
    assert "the served model is not the local checkpoint" in err and "--verify_floor" in err
    assert not list(tmp_path.glob("results/*/*/STSBenchmark.json"))
    assert stub.requests == 2  # the probe and the check: nothing of the task was encoded
