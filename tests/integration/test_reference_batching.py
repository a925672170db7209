"""``batching="reference"`` against a plain restatement of the two reference embedders, in bf16 on CPU.

The restatements below follow the published embedders step by step (argsort of character lengths, 32-row
batches, the Zh reference's 128-row blocks re-sorted by sentence-transformers, get_pooling's mean, the bf16
normalise or sklearn's normalize) and share no batching, pooling or normalising code with the harness, so
max_abs == 0.0 means the harness forms the same batches and does the same arithmetic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.preprocessing import normalize

from qzhou_eval import load_encoder
from qzhou_eval.cli.main import main
from qzhou_eval.encoder.reference_batches import reference_batches
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.options import Batching

INSTRUCTION = "Retrieve semantically similar text"
PREFIX = f"Instruct: {INSTRUCTION}\nQuery: "


@pytest.fixture(scope="module")
def call_texts(sts_sentences) -> list[str]:
    """One call's texts: 150 rows (over one Zh block), lengths from 0 to ~600 characters, repeats and empties."""
    rng = np.random.default_rng(7)
    texts = [" ".join(sts_sentences[i : i + int(rng.integers(1, 8))]) for i in range(0, 600, 5)]
    texts += ["", "", texts[3], texts[3], texts[40]] + [sts_sentences[i] for i in range(25)]
    return [texts[i] for i in rng.permutation(len(texts))]


def _shards(n: int, gpus: int) -> list[list[int]]:
    size, extra = divmod(n, gpus)
    starts = [i * size + min(i, extra) for i in range(gpus + 1)]
    return [list(range(starts[i], starts[i + 1])) for i in range(gpus)]


def _tokenize(tokenizer, texts, max_length):
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


@torch.inference_mode()
def reference_qzhou_embedding(encoder, raw: list[str], gpus: int = 1) -> np.ndarray:
    """QZhou-Embedding's embedder: each GPU's share sorted by -len, 32 a batch, mean of the last n states,
    F.normalize in bf16, float32 out, restored to input order."""
    model, tokenizer = encoder.loaded.model, encoder.tokenizer
    texts = [PREFIX + (t if t else "Null") for t in raw]
    out = np.empty((len(raw), encoder.embedding_dim), dtype=np.float32)
    for shard in _shards(len(raw), gpus):
        order = np.argsort([-len(raw[i]) for i in shard])
        for start in range(0, len(shard), 32):
            rows = [shard[j] for j in order[start : start + 32]]
            batch = _tokenize(tokenizer, [texts[i] for i in rows], 1024)
            hidden = model(**batch).last_hidden_state
            pooled = torch.stack([hidden[i, -n:, :].sum(dim=0) / n for i, n in enumerate(batch.attention_mask.sum(-1))])
            out[rows] = F.normalize(pooled, p=2, dim=-1).float().numpy()
    return out


@torch.inference_mode()
def reference_qzhou_zh(encoder, folder, raw: list[str], dim: int = 1792) -> np.ndarray:
    """QZhou-Embedding-Zh's embedder: sorted by -len, blocks of 128 handed to sentence-transformers (which sorts
    again and runs 32 a batch), last token, Dense in bf16, float32, slice to dim, sklearn normalize."""
    model, tokenizer, hooks = encoder.loaded.model, encoder.tokenizer, encoder.token_prepending
    template = "This sentence: <|im_start|>\u201c{text}\u201d means in one word: \u201c"
    texts = [template.format(text=PREFIX + (t if t else "Null")) for t in raw]
    weights = load_file(str(folder / "2_Dense" / "model.safetensors"))
    weight = next(v for k, v in weights.items() if k.endswith("weight")).to(torch.bfloat16)
    bias = next(v for k, v in weights.items() if k.endswith("bias")).to(torch.bfloat16)
    order = np.argsort([-len(t) for t in raw])
    sorted_rows = [int(i) for i in order]
    vectors = np.empty((len(raw), 1792), dtype=np.float32)
    for start in range(0, len(raw), 128):
        block = sorted_rows[start : start + 128]
        resorted = np.argsort([-len(texts[i]) for i in block])  # SentenceTransformer.encode's own sort
        for s in range(0, len(block), 32):
            rows = [block[j] for j in resorted[s : s + 32]]
            batch = _tokenize(tokenizer, [texts[i] for i in rows], 1024)
            with hooks.batch(batch.input_ids, batch.attention_mask):
                hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
            vectors[rows] = F.linear(hidden[:, -1], weight, bias).float().numpy()
    return normalize(vectors[:, :dim])


def test_reference_batching_equals_the_qzhou_embedding_reference_bit_for_bit(tiny_qzhou_embedding, call_texts):
    encoder = load_encoder(str(tiny_qzhou_embedding), dtype="bfloat16", batching="reference")
    assert encoder.batching == Batching(32, 0, "reference", 1, None)
    ours = encoder.encode(call_texts, instruction=INSTRUCTION)
    expected = reference_qzhou_embedding(encoder, call_texts)
    assert np.abs(ours - expected).max() == 0.0
    stats = encoder.stats
    assert stats.encoded == len(call_texts) and stats.padded_tokens >= stats.tokens > 0, "every row, counted"
    budget = load_encoder(str(tiny_qzhou_embedding), dtype="bfloat16").encode(call_texts, instruction=INSTRUCTION)
    print(f"\nQZhou-Embedding bf16 max_abs vs reference: reference {0.0}, budget {np.abs(budget - expected).max():.3g}")
    two = load_encoder(str(tiny_qzhou_embedding), dtype="bfloat16", batching="reference", reference_gpus=2)
    ours2 = two.encode(call_texts, instruction=INSTRUCTION)
    assert np.abs(ours2 - reference_qzhou_embedding(two, call_texts, gpus=2)).max() == 0.0
    assert np.abs(ours2 - ours).max() > 0, "a 2-GPU run's batches differ, and in bf16 so do its bits"
    assert np.array_equal(ours[call_texts.index("")], ours[len(call_texts) - 1 - call_texts[::-1].index("")])


def test_reference_batching_equals_the_qzhou_embedding_zh_reference_bit_for_bit(tiny_qzhou_zh, call_texts):
    encoder = load_encoder(str(tiny_qzhou_zh), dtype="bfloat16", batching="reference")
    assert encoder.batching.block == 128 and encoder.batching.max_rows == 32
    ours = encoder.encode(call_texts, instruction=INSTRUCTION)
    expected = reference_qzhou_zh(encoder, tiny_qzhou_zh, call_texts)
    assert np.abs(ours - expected).max() == 0.0
    budget = load_encoder(str(tiny_qzhou_zh), dtype="bfloat16").encode(call_texts, instruction=INSTRUCTION)
    print(
        f"\nQZhou-Embedding-Zh bf16 max_abs vs reference: reference {0.0}, budget {np.abs(budget - expected).max():.3g}"
    )
    assert np.abs(budget - ours).max() < 0.05, "the budget policy differs only in the last bf16 bits"


def test_reference_batches_keep_every_row_once():
    raw = ["a" * n for n in (3, 0, 7, 7, 1, 3, 12, 0)] * 20
    formatted = [f"p:{t or 'Null'}" for t in raw]
    for batching in (Batching(32, 0, "reference"), Batching(5, 0, "reference", 3, 16)):
        batches = reference_batches(raw, formatted, batching)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(raw))) and max(len(b) for b in batches) <= batching.max_rows


def test_reference_batching_is_refused_where_it_cannot_hold(tiny_qzhou_embedding):
    with pytest.raises(InvalidOptionError, match="only shapes the reference's batches"):
        load_encoder(str(tiny_qzhou_embedding), reference_gpus=2)
    with pytest.raises(InvalidOptionError, match="--backend vllm cannot"):
        load_encoder(str(tiny_qzhou_embedding), batching="reference", backend="vllm")
    with pytest.raises(InvalidOptionError, match="not a valid batching"):
        load_encoder(str(tiny_qzhou_embedding), batching="exact")


def test_the_run_records_the_policy_and_never_mixes_policies(tiny_qzhou_embedding, shared_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--tasks", "STSBenchmark", "--data_dir", str(shared_dir / "mteb-data")]
    args += ["--model_name_or_path", str(tiny_qzhou_embedding), "--output_dir", str(out), "-q", "--max_length", "64"]
    assert main([*args, "--batching", "reference"]) == 0, capsys.readouterr().err
    manifest = json.loads((out / "qzhou-run-tasks.json").read_text())
    assert manifest["resolved_options"]["batching"] == {"value": "reference", "source": "explicit"}
    assert manifest["resolved_options"]["batch_size"]["value"] == 32
    assert manifest["inputs"]["options"]["batching"] == "reference"
    capsys.readouterr()
    assert main(args) == 2, "budget is another identity: the folder's reference results are not reused"
    assert "batching: 'reference' -> None" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0, capsys.readouterr().err
    manifest = json.loads((out / "qzhou-run-tasks.json").read_text())
    assert "batching" not in manifest["inputs"]["options"], "the default policy keeps older records' identity"
    assert manifest["resolved_options"]["max_tokens_per_batch"]["value"] == 4096


def test_reference_batching_under_torchrun_is_refused_before_any_rank_loads_a_model(monkeypatch, minilm_path, tmp_path):
    from qzhou_eval.resolution.resolve import resolve
    from qzhou_eval.runs.config import RunConfig

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    config = RunConfig(minilm_path, None, tmp_path, tasks=["STSBenchmark"], encoder_options={"batching": "reference"})
    with pytest.raises(InvalidOptionError, match="--reference_gpus 2"):
        resolve(config.request(["STSBenchmark"]))
    assert not any(tmp_path.iterdir())  # refused before the run folder was touched
