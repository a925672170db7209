"""What identity by content costs: GB/s of the checkpoint hash, first run and repeated run.

Writes a multi-GB file of random bytes (a stand-in for a safetensors shard), then measures:

- BLAKE3 (multi-threaded, what ``qzhou_eval.integrity.content`` uses) and sha256 over the same bytes,
  from the page cache (warm) and, where the kernel lets us drop caches (root), from disk (cold);
- the repeated run through the memo (a stat per file, no bytes read);
- an edit that restores the mtime (``touch -r``): the memo must miss and re-hash.

It prints the projected first-run cost for a 7B checkpoint (15.2 GB of bf16 safetensors) at the
measured rates. Usage: ``python3 bench/hashing.py [--gb 4] [--dir /tmp]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from qzhou_eval.integrity.content import ContentMemo, file_sha256, hash_file

CHECKPOINT_7B_GB = 15.2  # Qwen2.5-7B in bf16: 7.6 G parameters x 2 bytes


def _write(path: Path, gb: float) -> None:
    block = os.urandom(64 << 20)
    with path.open("wb") as fh:
        for _ in range(int(gb * 1e9) // len(block)):
            fh.write(block[:-1] + os.urandom(1))  # not all blocks equal
    os.sync()


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _rate(fn, path: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn(path)
    seconds = time.perf_counter() - t0
    return seconds, path.stat().st_size / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=4.0, help="size of the test file in GB (default 4)")
    parser.add_argument("--dir", default=None, help="where to write it (default: the temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # a private memo
        path = Path(tmp) / "model-00001-of-00001.safetensors"
        _write(path, args.gb)
        size = path.stat().st_size / 1e9
        print(f"file: {size:.2f} GB, {os.cpu_count()} CPUs")
        rows = []
        for name, fn in (("blake3", hash_file), ("sha256", file_sha256)):
            fn(path)  # warm the page cache
            seconds, rate = _rate(fn, path)
            rows.append((name, "page cache", seconds, rate))
            if _drop_caches():
                seconds, rate = _rate(fn, path)
                rows.append((name, "disk (caches dropped)", seconds, rate))
        for name, where, seconds, rate in rows:
            print(f"{name:7s} {where:22s} {seconds:7.2f} s  {rate:6.2f} GB/s")
        memo = ContentMemo("bench")
        t0 = time.perf_counter()
        memo.digest(path)
        memo.save()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ContentMemo("bench")
        digest = again.digest(path)
        repeat = time.perf_counter() - t0
        print(f"memo: first run {first:.2f} s, repeated run {repeat * 1e3:.2f} ms (stat only, memo re-read)")
        reference = path.with_suffix(".ref")
        reference.touch()
        subprocess.run(["touch", "-r", str(path), str(reference)], check=True)
        with path.open("r+b") as fh:  # one byte changed in place, same size, mtime restored
            fh.seek(12345)
            byte = fh.read(1)
            fh.seek(12345)
            fh.write(bytes([byte[0] ^ 1]))
        subprocess.run(["touch", "-r", str(reference), str(path)], check=True)
        t0 = time.perf_counter()
        edited = ContentMemo("bench").digest(path)
        print(
            f"edit with mtime restored: re-hashed in {time.perf_counter() - t0:.2f} s, digest "
            f"{'changed' if edited != digest else 'UNCHANGED (bug)'}"
        )
        warm = next(r for n, w, _, r in rows if n == "blake3" and w == "page cache")
        cold = next((r for n, w, _, r in rows if n == "blake3" and w != "page cache"), None)
        line = f"7B checkpoint ({CHECKPOINT_7B_GB} GB): first run {CHECKPOINT_7B_GB / warm:.1f} s from the page cache"
        if cold:
            line += f", {CHECKPOINT_7B_GB / cold:.1f} s from this disk"
        print(line + f"; every later run {repeat * 1e3:.1f} ms per file")


if __name__ == "__main__":
    main()
