"""Benchmark: tokens computed against the limit, for the runner and for plain ``mteb.evaluate`` + ``SentenceTransformer``.

    python3 bench/token_efficiency.py [--tasks STSBenchmark,SICK-R,Banking77Classification] [--data_dir DIR]

Same model (the packaged all-MiniLM-L6-v2), same local data, one process each. For each task and side:
texts encoded against unique texts, real tokens against tokens computed (padding included), and time split
into encoding and mteb's scoring. The limit is every unique text of the task encoded once with no padding:
efficiency = the limit's tokens / the tokens a side computed. The runner's figures come from its own manifest
(``encode_stats``: tokens, padded_tokens, encode_s); the plain side's from a hook on the transformer module.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Before datasets is imported: offline, and a datasets cache of this run's own, so the plain side prepares the
# folders it is given (a shared cache can hold an older copy of a folder under the same path).
os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="token-efficiency-datasets-")


def runner_side(tasks: list[str], data_dir: str, out: Path) -> dict[str, dict]:
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    code = main_for_benchmark(
        "MTEB(eng, v2)", ["--tasks", *tasks, "--data_dir", data_dir, "--output_dir", str(out), "-q"]
    )
    if code != 0:
        raise SystemExit(f"the runner exited {code}")
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    return {name: {**entry["encode_stats"], "wall_s": entry["wall_s"]} for name, entry in manifest["tasks"].items()}


class _Counter:
    """Counts what SentenceTransformer's transformer module computes, and the time spent in encode()."""

    def __init__(self, model) -> None:
        self.tokens = self.padded = self.texts = 0
        self.encode_s = 0.0
        self.unique: set[str] = set()
        first = model[0]
        plain_forward, plain_encode = first.forward, model.encode

        def forward(features, *args, **kwargs):
            mask = features["attention_mask"]
            self.tokens += int(mask.sum())
            self.padded += mask.numel()
            return plain_forward(features, *args, **kwargs)

        def encode(sentences, *args, **kwargs):
            started = time.perf_counter()
            texts = [sentences] if isinstance(sentences, str) else list(sentences)
            self.texts += len(texts)
            self.unique.update(texts)
            try:
                return plain_encode(sentences, *args, **kwargs)
            finally:
                self.encode_s += time.perf_counter() - started

        first.forward, model.encode = forward, encode


def plain_side(tasks: list[str], data_dir: str, model_path: str) -> dict[str, dict]:
    import mteb
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    out = {}
    for name in tasks:
        task = mteb.get_task(name)
        task.metadata.dataset = {**task.metadata.dataset, "path": os.path.join(data_dir, name)}
        counter = _Counter(model)
        started = time.perf_counter()
        mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False)
        wall = time.perf_counter() - started
        out[name] = {
            "inputs": counter.texts,
            "unique": len(counter.unique),
            "tokens": counter.tokens,
            "padded_tokens": counter.padded,
            "encode_s": counter.encode_s,
            "wall_s": wall,
        }
        model = SentenceTransformer(model_path, device="cpu")  # a fresh model: no hooks stacked
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="STSBenchmark,SICK-R,Banking77Classification")
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    args = parser.parse_args()
    from qzhou_eval._paths import bundled_model_path

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    plain = plain_side(tasks, args.data_dir, bundled_model_path())  # first: the runner's offline set-up stays untouched
    with tempfile.TemporaryDirectory() as tmp:
        ours = runner_side(tasks, args.data_dir, Path(tmp))
    print(
        f"{'task':<26} {'side':<7} {'texts':>7} {'unique':>7} {'tokens':>9} {'computed':>9} {'efficiency':>10} "
        f"{'encode s':>9} {'scoring s':>9}"
    )
    totals = {"runner": [0, 0.0], "plain": [0, 0.0]}
    for name in tasks:
        limit = ours[name]["tokens"]  # every unique text once, no padding: the runner encodes each once
        for side, row in (("runner", ours[name]), ("plain", plain[name])):
            unique = plain[name]["unique"]
            totals[side][0] += row["padded_tokens"]
            totals[side][1] += row["wall_s"]
            print(
                f"{name:<26} {side:<7} {row['inputs'] if side == 'plain' else row['encoded']:>7} {unique:>7} "
                f"{row['tokens']:>9} {row['padded_tokens']:>9} {limit / row['padded_tokens']:>10.3f} "
                f"{row['encode_s']:>9.1f} {row['wall_s'] - row['encode_s']:>9.1f}"
            )
    limit_total = sum(ours[n]["tokens"] for n in tasks)
    for side, (computed, wall) in totals.items():
        print(
            f"{side}: efficiency {limit_total / computed:.3f} ({limit_total} useful of {computed} computed), {wall:.1f} s"
        )
    print(f"wall-time ratio runner / plain: {totals['runner'][1] / totals['plain'][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
