"""Benchmark: the runner in one process against 2 data-parallel ranks (torchrun, gloo), one thread each.

    python3 bench/data_parallel.py [--tasks all|NAME,...] [--nproc 2] [--data_dir ../shared/mteb-data] [--model PATH]

English tasks go through ``run_mteb_all_v2.py`` and Chinese ones through ``run_cmteb_all.py`` (a wall time
is the sum of both launches). Both configurations start fresh (new output folders, no cache reuse) with ``OMP_NUM_THREADS=1``, so the ranks split
the work rather than share cores. Prints both wall times, their ratio (target: <= 0.8x for 2 ranks) and,
for every task, the largest difference between the two runs over every score mteb wrote, and which field
(target: 1e-6). Rank correlations over inputs a model cannot tell apart (MiniLM reads every Chinese
character as [UNK], so many LCQMC/PAWSX texts share one token sequence) turn last-bit float noise
into 1e-4-sized Spearman changes; a one-process run with other batching moves them as much.
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
sys.path.insert(0, str(REPO))
_RUNNERS = {"run_mteb_all_v2.py": "MTEB(eng, v2)", "run_cmteb_all.py": "MTEB(cmn, v1)"}


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


def _result_files(output_dir: Path) -> list[Path]:
    """mteb result files (``<org__model>/<revision>/<Task>.json``), not the harness's own records."""
    return [p for p in output_dir.glob("*/*/*.json") if not any(part.startswith(".") for part in p.parts)]


def largest_difference(one: Path, other: Path) -> tuple[float, str]:
    """The largest absolute difference over every numeric field mteb wrote, and that field."""
    a = dict(_numbers(json.loads(one.read_text())["scores"]))
    b = dict(_numbers(json.loads(other.read_text())["scores"]))
    if a.keys() != b.keys():
        raise SystemExit(f"{one.name}: the two runs wrote different score fields")
    return max(((abs(a[k] - b[k]), k) for k in a), default=(0.0, "-"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="comma-separated names, or 'all' folders of --data_dir")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    args = parser.parse_args()
    if args.model is None:
        from qzhou_eval._paths import bundled_model_path

        args.model = bundled_model_path()
    data_dir = Path(args.data_dir)
    tasks = (
        sorted(p.name for p in data_dir.iterdir() if (p / "README.md").is_file() and p.is_dir())
        if args.tasks == "all"
        else args.tasks.split(",")
    )
    from qzhou_eval.benchmarks import bundled_task_names

    by_runner = {script: [t for t in tasks if t in bundled_task_names(suite)] for script, suite in _RUNNERS.items()}
    outside = sorted(set(tasks) - {t for names in by_runner.values() for t in names})
    if outside:
        print(f"not in either runner's suite, left out: {', '.join(outside)}")
    tasks = [t for t in tasks if t not in outside]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        outputs, seconds = {}, {}
        launches = {
            "1 process": [sys.executable],
            f"{args.nproc} ranks": [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                str(args.nproc),
            ],
        }
        for label, launch in launches.items():
            outputs[label] = Path(tmp) / label.replace(" ", "_")
            seconds[label] = 0.0
            for script, names in by_runner.items():
                if not names:
                    continue
                flags = [
                    "--model_name_or_path",
                    args.model,
                    "--data_dir",
                    str(data_dir),
                    "--tasks",
                    ",".join(names),
                    "--output_dir",
                    str(outputs[label]),
                    "-q",
                ]
                start = time.monotonic()
                done = subprocess.run([*launch, str(REPO / script), *flags], env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{label} {script} failed:\n{done.stderr[-3000:]}")
                seconds[label] += time.monotonic() - start
            print(f"  {label}: {seconds[label]:.1f} s", flush=True)
        one, many = outputs.values()
        results_one = {p.name: p for p in _result_files(one) if p.stem in tasks}
        print(f"tasks: {', '.join(tasks)}; model: {args.model}; OMP_NUM_THREADS=1 per process")
        for name, path in sorted(results_one.items()):
            twin = next(p for p in _result_files(many) if p.name == name)
            gap, field = largest_difference(path, twin)
            print(f"  {path.stem}: largest difference {gap:.2e} ({field})")
        first, second = seconds.values()
        print(
            f"1 process {first:.1f} s vs {args.nproc} ranks {second:.1f} s: ratio {second / first:.2f}x "
            f"(target <= 0.8x for 2 ranks)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
