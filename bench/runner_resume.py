"""Benchmark: a first run of the runner over the local task pack vs an identical second run (target < 10 %).

    python3 bench/runner_resume.py [--data_dir ../shared/mteb-data] [--benchmark "MTEB(eng, v2)"]

Prints both wall times (each a fresh process, as a user would run them) and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"MTEB(eng, v2)": "run_mteb_all_v2.py", "MTEB(cmn, v1)": "run_cmteb_all.py"}


def timed(command: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--benchmark", default="MTEB(eng, v2)", choices=sorted(SCRIPTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            str(REPO / SCRIPTS[args.benchmark]),
            "--data_dir",
            args.data_dir,
            "--only_available",
            "--output_dir",
            out,
        ]
        first = timed(command)
        second = timed(command)
    print(
        f"{args.benchmark} on {args.data_dir}: first run {first:.1f} s, identical second run {second:.2f} s, "
        f"ratio {100 * second / first:.1f} % (target < 10 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
