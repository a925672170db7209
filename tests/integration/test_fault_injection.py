"""A fault generator, not a list: seeded corruptions of every file a run reads or writes, and the invariants.

Targets: every file of the checkpoint folder, the task folder, the instruction file, the finished
output folder (results, records, manifest, lock, embedding cache) and the content-digest memos.
Faults: a bit flip at a random offset, truncation, zero length, replaced by a folder, by a link to
another file of the same place or by a dangling link, non-UTF-8 bytes written over text, and a
same-size byte edit; every in-place fault restores the file's mtime (the hardest case).

After each fault the runner's command line runs over the faulted world and must satisfy:

- exit 0 only with the score a run from scratch gives (a clean run's score for a fault in the
  harness's own state; a fresh run over the same faulted inputs, in a new output folder, for a fault in an
  input), and only from a result file its record verifies;
- otherwise exit 2 with one ``qzhou-eval: error:`` line, or exit 1 for a resumable run (a task
  recorded as failed); never a traceback or "internal error";
- no input file changed (the faulted input keeps its faulted bytes: nothing is "repaired" in place);
- nothing already written is lost: every result, record and cache file that existed is still there,
  or its exact bytes are (moved aside).

CI runs ``QZHOU_FAULTS`` faults (default 12) for seed ``QZHOU_FAULT_SEED`` (default 21); a large
budget by hand: ``QZHOU_FAULTS=300 python3 -m pytest tests/integration/test_fault_injection.py -s``.
"""

from __future__ import annotations

import collections
import io
import json
import os
import random
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.record.provenance import unverified_reason
from qzhou_eval.record.result_files import main_score_of

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BUDGET = int(os.environ.get("QZHOU_FAULTS", "12"))
SEED = int(os.environ.get("QZHOU_FAULT_SEED", "21"))
KINDS = ("bit_flip", "truncate", "zero_length", "directory", "link_to_other", "dangling_link", "non_utf8", "same_size")
INPUT_GROUPS = ("model", "data", "instructions")


@dataclass(frozen=True)
class Fault:
    group: str  # model | data | instructions | output | memo
    relpath: str
    kind: str
    offset_fraction: float
    detail: int

    def describe(self) -> str:
        return f"{self.kind} on {self.group}/{self.relpath}"


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def apply_fault(root: Path, fault: Fault, siblings: list[str]) -> None:
    """Corrupt ``root/fault.relpath`` in place (mtime restored where the file stays a file)."""
    path = root / fault.relpath
    stat = path.stat()
    data = path.read_bytes()
    offset = int(fault.offset_fraction * max(len(data) - 1, 0))
    kind = fault.kind
    if kind in ("bit_flip", "same_size", "non_utf8", "truncate") and not data:
        kind = "zero_length" if kind != "truncate" else "directory"
    if kind == "bit_flip":
        data = data[:offset] + bytes([data[offset] ^ (1 << (fault.detail % 8))]) + data[offset + 1 :]
    elif kind == "same_size":
        new = 32 + (data[offset] + 1 + fault.detail % 90) % 95  # another printable byte
        data = data[:offset] + bytes([new if new != data[offset] else new ^ 1]) + data[offset + 1 :]
    elif kind == "non_utf8":
        bad = b"\xff\xfe\xc3"[: max(1, min(3, len(data) - offset))]
        data = data[:offset] + bad + data[offset + len(bad) :]
    elif kind == "truncate":
        data = data[:offset]
    elif kind == "zero_length":
        data = b""
    if kind in ("directory", "link_to_other", "dangling_link"):
        path.unlink()
        if kind == "directory":
            path.mkdir()
        elif kind == "dangling_link":
            path.symlink_to(root / "no-such-file")
        else:
            others = [s for s in siblings if s != fault.relpath]
            target = others[fault.detail % len(others)] if others else "no-such-file"
            path.symlink_to(root / target)
        return
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: a file's bytes, or what stands in its place."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_file():
            out[rel] = path.read_bytes()
        elif path.is_dir() and not any(path.iterdir()):
            out[rel] = "empty folder"
    return out


@dataclass
class World:
    model: Path
    data: Path
    instructions: Path
    output: Path
    memo: Path

    def root(self, group: str) -> Path:
        return {
            "model": self.model,
            "data": self.data,
            "instructions": self.instructions.parent,
            "output": self.output,
            "memo": self.memo,
        }[group]


def run_argv(world: World, output: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--tasks",
        "STSBenchmark",
        "--model_name_or_path",
        str(world.model),
        "--model_name",
        MODEL_NAME,
        "--data_dir",
        str(world.data),
        "--instructions",
        str(world.instructions),
        "--output_dir",
        str(output),
        "--batch_size",
        "16",
        *extra,
    ]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def verified_score(stdout: str) -> float | None:
    match = re.search(r"task\(s\) with results.*?, in (\S+)", stdout)
    if not match:
        return None
    result = Path(match.group(1)) / "STSBenchmark.json"
    if not result.is_file() or unverified_reason(result) is not None:
        return None
    return main_score_of(result)


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory, minilm_path, copy_task):
    """A finished run (results, records, manifest, cache, memos) over a small real task, and its score."""
    base = tmp_path_factory.mktemp("faults-base")
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "HF_DATASETS_CACHE")}
    os.environ["HF_DATASETS_CACHE"] = str(base / "hf-datasets")
    os.environ["XDG_CACHE_HOME"] = str(base / "xdg")
    shutil.copytree(minilm_path, base / "model", ignore=shutil.ignore_patterns("README.md"))
    copy_task("STSBenchmark", base / "data", rows=120)
    instructions = base / "instructions" / "sts.json"
    instructions.parent.mkdir()
    instructions.write_text(
        json.dumps(
            {"tasks": {"STSBenchmark": {"instruction": "Retrieve semantically similar text", "documents": True}}}
        )
    )
    world = World(base / "model", base / "data", instructions, base / "out", base / "xdg" / "qzhou-eval")
    code, stdout, stderr = run_cli(run_argv(world, world.output))
    assert code == 0, stderr
    score = verified_score(stdout)
    assert score is not None
    yield world, score
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def generate(world: World, budget: int, seed: int) -> list[Fault]:
    rng = random.Random(seed)
    targets = [(g, rel) for g in (*INPUT_GROUPS, "output", "memo") for rel in _files(world.root(g))]
    return [Fault(*rng.choice(targets), rng.choice(KINDS), rng.random(), rng.randrange(1 << 16)) for _ in range(budget)]


def copy_world(world: World, dst: Path) -> World:
    new = World(
        dst / "model",
        dst / "data",
        dst / "instructions" / world.instructions.name,
        dst / "out",
        dst / "xdg" / "qzhou-eval",
    )
    for group in ("model", "data", "instructions", "output", "memo"):
        shutil.copytree(world.root(group), new.root(group), symlinks=True)
    return new


def warm_memos(world: World) -> None:
    """Digest the copied inputs at their new paths, so a fault meets a memo that knows the file (the real case:
    a file edited after a run), not a cold one that re-hashes everything anyway."""
    from qzhou_eval.modeling.source import resolve_source
    from qzhou_eval.runs.task_data import folder_fingerprints

    assert resolve_source(world.model).content_digest
    assert None not in folder_fingerprints(world.data, ["STSBenchmark"]).values()


def check_fault(world: World, clean_score: float, fault: Fault, tmp: Path) -> tuple[str, list[str]]:
    """Apply one fault to a copy of the world, run, and return (outcome, violated invariants)."""
    faulted = copy_world(world, tmp)
    os.environ["XDG_CACHE_HOME"] = str(tmp / "xdg")
    warm_memos(faulted)  # as after a run at these very paths: the memo holds every input's digest
    root = faulted.root(fault.group)
    apply_fault(root, fault, _files(root))
    inputs_before = {g: snapshot(faulted.root(g)) for g in INPUT_GROUPS}
    output_before = snapshot(faulted.output)
    code, stdout, stderr = run_cli(run_argv(faulted, faulted.output))
    problems = []
    if "Traceback" in stderr or "internal error" in stderr:
        problems.append(f"exit {code} with a traceback / internal error: {stderr[-600:]}")
    if code not in (0, 1, 2):
        problems.append(f"exit code {code}")
    if code == 2 and "qzhou-eval: error:" not in stderr:
        problems.append(f"exit 2 without a one-line error: {stderr[-300:]}")
    if code == 1 and "rerun the same command" not in stdout + stderr:
        problems.append("exit 1 that is not a resumable run")
    for group in INPUT_GROUPS:
        if snapshot(faulted.root(group)) != inputs_before[group]:
            problems.append(f"an input file of {group} was changed by the run")
    after = snapshot(faulted.output)
    kept_bytes = {v for v in after.values() if isinstance(v, bytes)}
    for rel, content in output_before.items():
        precious = rel.endswith((".json", ".sqlite")) and not rel.startswith(".qzhou/runs/")
        if fault.group == "output" and rel == fault.relpath or not precious or not isinstance(content, bytes):
            continue
        if rel not in after and content not in kept_bytes:
            problems.append(f"{rel} was lost")
    if code == 0:
        score = verified_score(stdout)
        if fault.group in INPUT_GROUPS:
            fresh_code, fresh_out, fresh_err = run_cli(run_argv(faulted, tmp / "fresh"))
            expected = verified_score(fresh_out) if fresh_code == 0 else None
            if fresh_code != 0:
                problems.append(f"exit 0, but a run from scratch over the same inputs exits {fresh_code}")
        else:
            expected = clean_score
        if score is None or expected is None or abs(score - expected) > 1e-5:
            problems.append(f"exit 0 with score {score}, a run from scratch gives {expected}")
    outcome = {0: "exit 0, correct score", 1: "exit 1, resumable", 2: "exit 2, one-line error"}.get(code, str(code))
    return outcome, problems


def test_generated_faults_never_give_a_wrong_score_or_lose_data(clean_world, tmp_path):
    world, clean_score = clean_world
    faults = generate(world, BUDGET, SEED)
    outcomes: collections.Counter[str] = collections.Counter()
    by_kind: collections.Counter[str] = collections.Counter()
    violations = []
    saved_xdg = os.environ["XDG_CACHE_HOME"]
    try:
        for index, fault in enumerate(faults):
            outcome, problems = check_fault(world, clean_score, fault, tmp_path / f"f{index}")
            outcomes[f"{fault.group}: {outcome}"] += 1
            by_kind[f"{fault.group}:{fault.kind}"] += 1
            violations += [f"#{index} {fault.describe()}: {p}" for p in problems]
            shutil.rmtree(tmp_path / f"f{index}", ignore_errors=True)
    finally:
        os.environ["XDG_CACHE_HOME"] = saved_xdg
    print(f"\n{len(faults)} faults (seed {SEED}): {dict(sorted(outcomes.items()))}; {len(violations)} violation(s)")
    print("targets x kinds:", dict(sorted(by_kind.items())))
    assert not violations, "\n".join(violations)


def test_the_generator_covers_every_place_and_kind(clean_world):
    """The generator draws from every file of every place the harness reads or writes, with every kind of fault."""
    world, _ = clean_world
    faults = generate(world, 400, SEED)
    assert {f.group for f in faults} == {*INPUT_GROUPS, "output", "memo"}
    assert {f.kind for f in faults} == set(KINDS)
    outputs = {f.relpath for f in faults if f.group == "output"}
    assert any(p.endswith("STSBenchmark.json") and p.startswith(".qzhou/records") for p in outputs)
    assert any(p.endswith("embeddings.sqlite") for p in outputs)
    assert any(p.endswith("model.safetensors") for p in {f.relpath for f in faults if f.group == "model"})
