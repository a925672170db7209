"""Benchmark: the embedding cache at suite scale, and the projected cache size of both suites.

    python3 bench/cache_layout.py [--rows 1000000] [--dim 3584] [--dtypes bfloat16,float32] [--dir /tmp]

For each stored precision: ``--rows`` synthetic unit vectors of ``--dim`` values (bf16-exact ones for the
bf16 layout, as a bf16 QZhou-Embedding run produces) written through ``EmbeddingCache.put_many`` in batches
of 256 (the encoder's commit unit), then read back by random keys. Printed: write and read throughput, file
size and its bytes per row beyond the values, and the cost of a lookup as the cache grows. Then the plan of
MTEB(eng, v2) and MTEB(cmn, v1) for QZhou-Embedding (3,584 dims) and QZhou-Embedding-Zh (1,792) gives the
projected cache sizes. Needs about rows x dim x 6 bytes of free disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from qzhou_eval.encoder.cache import PAGE_SIZE

os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"

BATCH = 256
PROBE = 2000  # random keys per lookup measurement


def vectors(rng: np.random.Generator, rows: int, dim: int, bf16: bool) -> np.ndarray:
    v = rng.standard_normal((rows, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    if bf16:  # keep the upper 16 bits: exactly representable in bfloat16
        v = (v.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    return v


def measure(folder: Path, rows: int, dim: int, bf16: bool, page_size: int) -> dict:
    import qzhou_eval.encoder.cache as cache_module
    from qzhou_eval.encoder.cache import EmbeddingCache, model_key
    from qzhou_eval.encoder.stats import EncodeStats

    cache_module.PAGE_SIZE = page_size
    path = folder / f"cache-{'bf16' if bf16 else 'f32'}-{page_size}.sqlite"
    cache = EmbeddingCache(path, model_key({"bench": dim, "bf16": bf16}))
    rng = np.random.default_rng(0)
    keys_all: list[bytes] = []
    lookups = []
    checkpoints = {r for r in (10_000, 100_000, rows) if r <= rows}
    write_s = 0.0
    done = 0
    while done < rows:
        n = min(BATCH * 40, rows - done)
        block = vectors(rng, n, dim, bf16)
        keys = cache.keys([f"text {i}" for i in range(done, done + n)])
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            cache.put_many(keys[i : i + BATCH], block[i : i + BATCH])
        write_s += time.perf_counter() - start
        keys_all += keys
        done += n
        for mark in sorted(c for c in checkpoints if done >= c):
            checkpoints.discard(mark)
            probe = [keys_all[j] for j in rng.integers(0, len(keys_all), PROBE)]
            start = time.perf_counter()
            found = cache.get_many(probe, EncodeStats())
            lookups.append((mark, (time.perf_counter() - start) / PROBE * 1e6, len(found)))
        if done % 102_400 < BATCH * 40:
            print(
                f"  {'bf16' if bf16 else 'f32'} {page_size // 1024} KB pages: {done:,} rows, {done / write_s:,.0f} rows/s",
                flush=True,
            )
    cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    size = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())
    cache = EmbeddingCache(path, model_key({"bench": dim, "bf16": bf16}))  # a fresh process's view: cold reads
    probe = [keys_all[j] for j in rng.integers(0, len(keys_all), 20_000)]
    start = time.perf_counter()
    found = cache.get_many(probe, EncodeStats())
    read_s = time.perf_counter() - start
    cache.close()
    value_bytes = 2 if bf16 else 4
    print()
    return {
        "layout": f"{'bf16 (2 B/value)' if bf16 else 'float32 (4 B/value)'}, {page_size // 1024} KB pages",
        "rows": rows,
        "write rows/s": rows / write_s,
        "write MB/s": size / write_s / 1e6,
        "read rows/s": len(found) / read_s,
        "file GB": size / 1e9,
        "overhead B/row": size / rows - dim * value_bytes,
        "lookups": lookups,
        "path": path,
    }


def projected() -> list[list[str]]:
    from qzhou_eval.encoder.cache import stored_row_bytes
    from qzhou_eval.planning.compute import parse_device
    from qzhou_eval.planning.plan import build_plan
    from qzhou_eval.runs.config import RunConfig

    rows = []
    for preset, benchmarks in (
        ("qzhou-embedding", ["MTEB(eng, v2)", "MTEB(cmn, v1)"]),
        ("qzhou-embedding-zh", ["MTEB(cmn, v1)"]),
    ):
        for benchmark in benchmarks:
            config = RunConfig(
                model_name_or_path=None, benchmark=benchmark, output_dir=Path(tempfile.mkdtemp()), preset=preset
            )
            plan = build_plan(config, parse_device("H100", 0.35))
            rows.append(
                [
                    preset,
                    benchmark,
                    f"{plan.model.shape.output_dim}",
                    f"{plan.total('encoded') / 1e6:.2f} M",
                    f"{plan.value_bytes}",
                    f"{plan.total('cache_bytes') / 1e9:.1f} GB",
                    f"{plan.total('encoded') * stored_row_bytes(plan.model.shape.output_dim, 4) / 1e9:.1f} GB",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=3584)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument(
        "--page_sizes", default="65536,4096", help="SQLite page sizes to compare (the cache uses 65536)"
    )
    parser.add_argument(
        "--compare_rows", type=int, default=300_000, help="rows for the page sizes the cache does not use (slow)"
    )
    parser.add_argument("--dir", default=None, help="where the cache files go (removed afterwards)")
    args = parser.parse_args()
    from tabulate import tabulate

    folder = Path(tempfile.mkdtemp(prefix="cache-layout-", dir=args.dir))
    results = []
    try:
        for dtype in args.dtypes.split(","):
            for page_size in (int(p) for p in args.page_sizes.split(",")):
                rows = args.rows if page_size == PAGE_SIZE else min(args.rows, args.compare_rows)
                result = measure(folder, rows, args.dim, dtype.strip() in ("bfloat16", "bf16"), page_size)
                results.append(result)
                Path(result["path"]).unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"SQLite cache, {args.dim} dims, batches of {BATCH} rows a commit, random keys (this machine):")
    table = [
        [
            r["layout"],
            f"{r['rows']:,}",
            f"{r['write rows/s']:,.0f}",
            f"{r['write MB/s']:,.0f}",
            f"{r['read rows/s']:,.0f}",
            f"{r['file GB']:.2f}",
            f"{r['overhead B/row']:.0f}",
        ]
        for r in results
    ]
    headers = ["layout", "rows", "write rows/s", "write MB/s", "read rows/s (random keys)", "file GB", "overhead B/row"]
    print(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    print("lookup cost as the cache grows (microseconds per key, random keys, warm):")
    for r in results:
        print("  " + r["layout"] + ": " + ", ".join(f"{n:,} rows {us:.0f} us" for n, us, _ in r["lookups"]))
    print("projected cache size (plan of the suite, bf16 on a GPU; rows packed into 64 KB pages as measured above):")
    headers = ["preset", "suite", "dims", "unique texts", "B/value", "cache", "as float32"]
    print(tabulate(projected(), headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
