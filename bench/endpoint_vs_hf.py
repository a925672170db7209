"""Benchmark: the endpoint backend (``vllm serve`` behind /v1/embeddings) against the HF backend, same model.

    python3 bench/endpoint_vs_hf.py [--tasks STSBenchmark,SICK-R,Banking77Classification,PAWSX]
                                    [--data_dir ../shared/mteb-data] [--model PATH] [--concurrency 4]

Starts vLLM's OpenAI-compatible server on 127.0.0.1 with the model (float32; on the CPU build it reserves
10 % of RAM), then runs the same tasks twice through the runner, each in a fresh output folder (no cache
or result reuse): ``--backend hf`` and ``--backend openai --base_url ...`` (with the start-up check against
the local weights). Prints wall time and main score per task for both, and the largest score difference.
The server's start-up is reported apart: a team evaluating a served model has it running already.
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


def run(args: list[str]) -> tuple[float, dict[str, float]]:
    """One runner process; its wall time and {task: main score x100} from its manifest."""
    out = Path(tempfile.mkdtemp(prefix="qzhou-bench-endpoint-"))
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "qzhou_eval.cli.main", "run", "-q", *args, "--output_dir", str(out)],
        check=True,
        cwd=REPO,
    )
    wall = time.monotonic() - start
    (manifest,) = out.glob("qzhou-run-*.json")
    tasks = json.loads(manifest.read_text())["tasks"]
    return wall, {name: 100 * entry["main_score"] for name, entry in tasks.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="STSBenchmark,SICK-R,Banking77Classification,PAWSX")
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    parser.add_argument("--concurrency", type=int, default=4, help="--endpoint_concurrency")
    args = parser.parse_args()
    if args.model is None:
        from qzhou_eval._paths import bundled_model_path

        args.model = bundled_model_path()
    common = [
        "--model_name_or_path",
        args.model,
        "--model_name",
        "bench/model",
        "--tasks",
        args.tasks,
        "--data_dir",
        args.data_dir,
        "--cache_dir",
        "none",
    ]
    from qzhou_eval.testing.vllm_server import LocalVllmServer

    log = Path(tempfile.mkdtemp(prefix="qzhou-bench-vllm-")) / "server.log"
    with LocalVllmServer(args.model, "bench/model", log) as server:
        url, startup = server.url, server.startup_s
        hf_wall, hf = run(common)
        ep_wall, served = run(
            [*common, "--backend", "openai", "--base_url", url, "--endpoint_concurrency", str(args.concurrency)]
        )
    print(f"model {args.model}; tasks {args.tasks}; {os.cpu_count()} CPU cores; vllm serve start-up {startup:.1f} s")
    print(f"{'task':<28} {'hf':>8} {'endpoint':>9} {'delta':>8}")
    for name in hf:
        print(f"{name:<28} {hf[name]:>8.2f} {served[name]:>9.2f} {served[name] - hf[name]:>+8.4f}")
    print(f"{'wall time (s)':<28} {hf_wall:>8.1f} {ep_wall:>9.1f} {ep_wall / hf_wall:>7.2f}x")
    print(f"largest |score difference|: {max(abs(served[n] - hf[n]) for n in hf):.4f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
