"""Benchmark: how the runner's wall time grows with a retrieval corpus (SciFact cut to 1/8, 1/4, 1/2 and all).

    python3 bench/corpus_scaling.py [--data_dir ../shared/mteb-data] [--fractions 0.125,0.25,0.5,1]

Each cut keeps every document a test query is judged against and a seeded random share of the others, so
the task stays well formed; the queries and qrels are unchanged. One fresh runner process per cut (packaged
all-MiniLM-L6-v2, new output folder and cache). Printed per cut: documents, tokens encoded, encoding seconds
(the manifest's ``encode_s``), the rest of the task's time (mteb's retrieval and scoring), and seconds per
1,000 documents, so a linear cost reads as a flat last column.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"


def cut(source: Path, target: Path, fraction: float) -> int:
    """A copy of the SciFact folder whose corpus keeps ``fraction`` of the documents (all the judged ones)."""
    shutil.copytree(source, target)
    with gzip.open(source / "qrels" / "test.jsonl.gz", "rt") as fh:
        judged = {json.loads(line)["corpus-id"] for line in fh}
    with gzip.open(source / "corpus" / "test.jsonl.gz", "rt") as fh:
        docs = [json.loads(line) for line in fh]
    others = [d for d in docs if str(d["_id"]) not in {str(j) for j in judged}]
    keep_n = max(0, round(fraction * len(docs)) - (len(docs) - len(others)))
    kept = {id(d) for d in random.Random(0).sample(others, min(keep_n, len(others)))}
    chosen = [d for d in docs if id(d) in kept or str(d["_id"]) in {str(j) for j in judged}]
    with gzip.open(target / "corpus" / "test.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in chosen)
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--fractions", default="0.125,0.25,0.5,1")
    args = parser.parse_args()
    from tabulate import tabulate

    from qzhou_eval.cli.main import main as cli

    work = Path(tempfile.mkdtemp(prefix="corpus-scaling-"))
    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        data = work / f"data-{fraction}"
        data.mkdir()
        documents = cut(Path(args.data_dir) / "SciFact", data / "SciFact", fraction)
        out = work / f"run-{fraction}"
        if cli(["run", "--tasks", "SciFact", "--data_dir", str(data), "--output_dir", str(out), "-q"]) != 0:
            raise SystemExit(f"the runner failed on the {fraction} cut")
        entry = json.loads(next(out.glob("qzhou-run-*.json")).read_text())["tasks"]["SciFact"]
        stats, wall = entry["encode_stats"], entry["wall_s"]
        rows.append(
            [
                f"{fraction:g}",
                f"{documents:,}",
                f"{stats['tokens']:,}",
                f"{stats['encode_s']:.1f}",
                f"{wall - stats['encode_s']:.1f}",
                f"{wall:.1f}",
                f"{1000 * wall / documents:.1f}",
                f"{100 * entry['main_score']:.2f}",
            ]
        )
    headers = ["corpus share", "documents", "tokens", "encode s", "rest s", "task wall s", "s / 1k docs", "ndcg@10"]
    print("SciFact, all-MiniLM-L6-v2, 2 CPU cores, 300 test queries:")
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
