"""What only a GPU shows, on the tiny published layouts: bf16 + sdpa against float32, bidirectional attention
without padding, the reference batching on CUDA, and vLLM's CUDA build against the HF backend.

Skipped (with the reason printed by ``-rs``) where CUDA is absent; nothing else in the suite needs a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qzhou_eval import load_encoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 + sdpa, vLLM CUDA parity)"),
]
SCRIPT = Path(__file__).with_name("vllm_parity_script.py")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("layout", ["tiny_qzhou_embedding", "tiny_qzhou_zh"])
def test_bf16_sdpa_on_cuda_follows_float32_on_cpu(layout, request, varied_texts):
    folder = str(request.getfixturevalue(layout))
    cpu = load_encoder(folder, device="cpu", dtype="float32").encode(varied_texts)
    gpu = load_encoder(folder, device="cuda", dtype="bfloat16")
    assert gpu.loaded.attn_implementation == "sdpa"
    cosines = _cosines(gpu.encode(varied_texts), cpu)
    print(f"\n{layout}: bf16 + sdpa on CUDA vs float32 on CPU, worst cosine {cosines.min():.6f}")
    assert cosines.min() >= 0.999


def test_bidirectional_rows_without_padding_equal_padded_ones(tiny_qzhou_embedding, varied_texts):
    encoder = load_encoder(str(tiny_qzhou_embedding), device="cuda", dtype="float32")
    assert encoder.options.bidirectional is True
    together = encoder.encode(varied_texts)  # padded batches
    alone = np.stack([encoder.encode([text])[0] for text in varied_texts])  # one row: no padding at all
    assert np.abs(together - alone).max() < 1e-4, "the padding mask must hide pads from bidirectional attention"


@pytest.mark.parametrize("layout", ["tiny_qzhou_embedding", "tiny_qzhou_zh"])
def test_reference_batching_runs_on_cuda_and_stays_close_to_the_budget(layout, request, varied_texts):
    folder = str(request.getfixturevalue(layout))
    reference = load_encoder(folder, device="cuda", dtype="bfloat16", batching="reference").encode(varied_texts)
    budget = load_encoder(folder, device="cuda", dtype="bfloat16").encode(varied_texts)
    difference = np.abs(reference - budget).max()
    print(f"\n{layout}: bf16 on CUDA, reference vs budget batching max_abs {difference:.3g}")
    assert difference < 0.05


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (pip install -e '.[vllm]')")
def test_vllm_on_cuda_matches_hf(tmp_path, tiny_qwen2, tiny_qwen3, varied_texts):
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(varied_texts + ["", "Null"]))
    out = tmp_path / "report.json"
    cases = [f"qwen2_bidi_mean={tiny_qwen2}:pooling=mean,bidirectional=true", f"qwen3_last={tiny_qwen3}:pooling=last"]
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), str(texts), *cases], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    for name, entry in json.loads(out.read_text()).items():
        print(f"\n{name}: vLLM (CUDA) vs HF, worst cosine {min(entry['cosines']):.6f}")
        assert min(entry["cosines"]) >= 0.9999
