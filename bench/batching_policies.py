"""Benchmark: the two batching policies on one task's real calls, in bf16 (as on GPU) and float32.

    python3 bench/batching_policies.py [--model PATH] [--device cpu|cuda]

The calls are what mteb makes for STSBenchmark (test: sentence1 then sentence2, 1,379 rows each, with
repeats). For each policy and dtype: wall time, texts/s, forward passes, and the largest difference from the
float32 budget vectors and from the other policy. ``budget`` encodes each distinct text once in token-budget
batches; ``reference`` forms the reference embedders' own batches (every row, 32 a batch). In float32 the two
agree to rounding; in bf16 their last bits differ, which is why ``--batching reference`` exists.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "mteb-data" / "STSBenchmark" / "test.jsonl.gz"


def calls() -> list[list[str]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [[r["sentence1"] for r in rows], [r["sentence2"] for r in rows]]


def run(model: str, device: str, dtype: str, batching: str, texts: list[list[str]]) -> tuple[np.ndarray, float, int]:
    from qzhou_eval import load_encoder

    encoder = load_encoder(model, device=device, dtype=dtype, batching=batching)
    passes = 0
    plain = encoder.backend.embed_batch

    def counted(features, normalize=True):
        nonlocal passes
        passes += 1
        return plain(features, normalize)

    encoder.backend.embed_batch = counted
    encoder.encode(texts[0][:64])  # warm-up
    passes = 0
    start = time.perf_counter()
    vectors = np.concatenate([encoder.encode(call) for call in texts])
    return vectors, time.perf_counter() - start, passes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from qzhou_eval._paths import bundled_model_path

    model = args.model or bundled_model_path()
    texts = calls()
    rows = sum(len(c) for c in texts)
    distinct = sum(len(set(c)) for c in texts)
    print(f"{model} on {args.device}: STSBenchmark test, {rows} rows in 2 calls ({distinct} distinct within a call)")
    results = {}
    for dtype in ("float32", "bfloat16"):
        for policy in ("budget", "reference"):
            results[dtype, policy] = run(model, args.device, dtype, policy, texts)
    base = results["float32", "budget"][0]
    print(f"{'dtype':<9} {'policy':<10} {'wall s':>7} {'rows/s':>8} {'passes':>7} {'max|d| vs fp32 budget':>22}")
    for (dtype, policy), (vectors, wall, passes) in results.items():
        diff = np.abs(vectors - base).max()
        print(f"{dtype:<9} {policy:<10} {wall:>7.2f} {rows / wall:>8.0f} {passes:>7} {diff:>22.3g}")
    for dtype in ("float32", "bfloat16"):
        gap = np.abs(results[dtype, "budget"][0] - results[dtype, "reference"][0]).max()
        print(f"{dtype}: budget vs reference max|d| {gap:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
