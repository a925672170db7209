"""Benchmark: the harness's runner against plain ``mteb.evaluate`` + ``SentenceTransformer``, same tasks and model.

    python3 bench/end_to_end.py [--tasks STSBenchmark,SICK-R,Banking77Classification] [--repeats 3]
                                [--data_dir ../shared/mteb-data] [--model PATH] [-- RUNNER FLAGS...]

Each measurement is a fresh process with a fresh output folder (no cache or result reuse), as a user
would run it; the two tools alternate, and the medians are compared (target: runner <= 0.5x). Then
the runner runs once more over its last output folder (the second-run ratio: finished tasks are
skipped). Extra runner flags after ``--`` (e.g. ``-- --max_tokens_per_batch 0``) measure a variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Plain mteb 2.x + sentence-transformers, loading the local task folders the way the data README says.
_PLAIN = """
import json, os, sys, tempfile
os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
# its own datasets cache: a shared one can hold an older copy of a folder under the same path
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="plain-mteb-datasets-")
import mteb
from sentence_transformers import SentenceTransformer
model_path, data_dir, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
tasks = []
for name in names:
    task = mteb.get_task(name)
    task.metadata.dataset = {**task.metadata.dataset, "path": os.path.join(data_dir, name)}
    tasks.append(task)
model = SentenceTransformer(model_path, device="cpu")
results = mteb.evaluate(model, tasks=tasks, cache=None, show_progress_bar=False)
print(json.dumps({r.task_name: r.get_score() for r in results.task_results}))
"""


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=cwd)
    return time.monotonic() - start, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="STSBenchmark,SICK-R,Banking77Classification")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.model is None:
        from qzhou_eval._paths import bundled_model_path

        args.model = bundled_model_path()
    plain_times, ours_times, plain_scores = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        out = None
        for i in range(args.repeats):
            out = Path(tmp) / f"run{i}"
            runner = [
                sys.executable,
                str(REPO / "run_mteb_all_v2.py"),
                "--model_name_or_path",
                args.model,
                "--data_dir",
                args.data_dir,
                "--tasks",
                args.tasks,
                "--output_dir",
                str(out),
                "-q",
                *extra,
            ]
            seconds, _ = timed(runner)
            ours_times.append(seconds)
            seconds, stdout = timed([sys.executable, "-c", _PLAIN, args.model, args.data_dir, args.tasks], cwd=tmp)
            plain_times.append(seconds)
            plain_scores = json.loads(stdout.strip().splitlines()[-1])
            print(
                f"  round {i + 1}: runner {ours_times[-1]:.1f} s, plain mteb + SentenceTransformer {seconds:.1f} s",
                flush=True,
            )
        second, _ = timed(runner)
        manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    ours, plain = statistics.median(ours_times), statistics.median(plain_times)
    print(f"tasks: {args.tasks}; model: {args.model}; runner flags: {' '.join(extra) or '(defaults)'}")
    print(
        f"runner (fresh output) median {ours:.1f} s vs plain mteb.evaluate + SentenceTransformer median {plain:.1f} s: "
        f"ratio {ours / plain:.2f}x (target <= 0.5x)"
    )
    print(f"second runner run over the same output: {second:.1f} s = {100 * second / ours:.1f} % of a first run")
    print(f"plain mteb main scores: {json.dumps({k: round(v, 5) for k, v in plain_scores.items()})}")
    print(f"runner main scores: {json.dumps({k: round(v['main_score'], 5) for k, v in manifest['tasks'].items()})}")
    print(f"runner embeddings: {manifest.get('encode_stats')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
