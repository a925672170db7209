import json

import pytest

from qzhou_eval.benchmarks import benchmark_tasks, bundled_task_names
from qzhou_eval.cli.main import main
from qzhou_eval.errors import InstructionError, InvalidOptionError
from qzhou_eval.instructions import InstructionSet, load_benchmark_instructions
from qzhou_eval.instructions.registry import route_prefix

BENCHMARKS = ["MTEB(eng, v2)", "MTEB(cmn, v1)"]


@pytest.fixture(scope="module")
def reference(shared_dir):
    return json.loads((shared_dir / "reference" / "qzhou-instructions.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("bench_name", BENCHMARKS)
def test_bundled_file_reproduces_reference_exactly(bench_name, reference):
    bundled = load_benchmark_instructions(bench_name)
    ref = reference[bench_name]
    assert bundled.template == reference["template"] == "Instruct: {instruction}\nQuery: "
    assert {k: v.instruction for k, v in bundled.tasks.items()} == ref["instructions"]
    assert {k for k, v in bundled.tasks.items() if v.documents} == set(ref["document_side_tasks"])


@pytest.mark.parametrize("bench_name", BENCHMARKS)
def test_every_task_routed_to_the_right_prefix(bench_name, reference):
    tasks = [task.metadata.name for task in benchmark_tasks(bench_name)]
    instructions = load_benchmark_instructions(bench_name)
    instructions.check_coverage(tasks)
    assert sorted(tasks) == bundled_task_names(bench_name), "the bundled file must list exactly the suite's tasks"
    ref = reference[bench_name]
    doc_side = set(ref["document_side_tasks"])
    for task in tasks:
        expected = f"Instruct: {ref['instructions'][task]}\nQuery: "
        assert route_prefix(instructions, task, "query", True) == expected, task
        doc_expected = expected if task in doc_side else ""
        assert route_prefix(instructions, task, "document", True) == doc_expected, task
        # mteb passes no prompt type for STS / classification / clustering inputs: document rule applies.
        assert route_prefix(instructions, task, None, True) == doc_expected, task
        assert route_prefix(instructions, task, "query", False) == ""
        assert route_prefix(instructions, task, "document", False) == ""


def test_symmetric_lists_match_the_spec():
    eng = load_benchmark_instructions("MTEB(eng, v2)")
    plain_doc_retrieval = {
        "ClimateFEVERHardNegatives",
        "FEVERHardNegatives",
        "FiQA2018",
        "HotpotQAHardNegatives",
        "SCIDOCS",
        "TRECCOVID",
        "Touche2020Retrieval.v3",
    }
    assert {t for t, v in eng.tasks.items() if not v.documents} == plain_doc_retrieval
    cmn = load_benchmark_instructions("MTEB(cmn, v1)")
    assert {t for t, v in cmn.tasks.items() if not v.documents} == {
        "CmedqaRetrieval",
        "CovidRetrieval",
        "DuRetrieval",
        "EcomRetrieval",
        "MMarcoRetrieval",
        "MedicalRetrieval",
        "T2Retrieval",
        "VideoRetrieval",
    }


def test_coverage_check_names_missing_tasks():
    s = InstructionSet.from_dict({"tasks": {"STS12": {"instruction": "x", "documents": True}}}, origin="mine.json")
    with pytest.raises(
        InstructionError, match=r"2 task\(s\) have no instruction in mine.json: \['ArguAna', 'SCIDOCS'\]"
    ):
        s.check_coverage(["STS12", "SCIDOCS", "ArguAna"])


def test_user_files_json_yaml_and_reference_shape(tmp_path):
    (tmp_path / "a.yaml").write_text("tasks:\n  MyTask:\n    instruction: Find it\n    documents: true\n")
    (tmp_path / "b.json").write_text(
        json.dumps({"MyTask": "Find it", "Other": "Get", "document_side_tasks": ["MyTask"]})
    )
    for name in ("a.yaml", "b.json"):
        s = InstructionSet.from_file(tmp_path / name)
        assert s.query_prefix("MyTask") == "Instruct: Find it\nQuery: "
        assert s.document_prefix("MyTask") == "Instruct: Find it\nQuery: "
    assert InstructionSet.from_file(tmp_path / "b.json").document_prefix("Other") == ""


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "cannot be parsed"),
        ('{"tasks": {"T": {"documents": true}}}', "needs a string 'instruction'"),
        ('{"tasks": {"T": {"instruction": "x", "documents": "yes"}}}', "must be true or false"),
        ('{"T": "x", "document_side_tasks": ["U"]}', "document_side_tasks names tasks with no instruction"),
        ('{"template": "no slot", "tasks": {}}', "has no '\\{instruction\\}' slot"),
        ("[1, 2]", "expected a mapping"),
    ],
)
def test_malformed_instruction_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InstructionError, match=match):
        InstructionSet.from_file(path)


def test_missing_file_and_unknown_task():
    with pytest.raises(InstructionError, match="does not exist"):
        InstructionSet.from_file("/nonexistent/instr.json")
    with pytest.raises(InstructionError, match=r"closest: \['STS17'"):
        load_benchmark_instructions("MTEB(eng, v2)").query_prefix("STS21")
    with pytest.raises(InvalidOptionError, match=r"has no bundled QZhou instructions .*--instructions FILE"):
        load_benchmark_instructions("MTEB(deu, v1)")


def test_cli_instructions_json(capsys):
    assert main(["instructions", "--benchmark", "MTEB(cmn, v1)", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 31
    assert out["T2Retrieval"]["document_prefix"] == ""
    assert out["T2Retrieval"]["query_prefix"].startswith("Instruct: Given a Chinese search query")
    assert out["LCQMC"]["document_prefix"] == out["LCQMC"]["query_prefix"] != ""
    assert main(["instructions", "--benchmark", "MTEB(eng, v2)", "--use_instruction", "false"]) == 0
    assert json.loads(capsys.readouterr().out)["ArguAna"] == {"query_prefix": "", "document_prefix": ""}


def test_the_instructions_command_never_asks_the_hub():
    """A published model named by its preset: its hub-cache copy or the preset alone, never a request."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    argv = ["instructions", "--benchmark", "MTEB(eng, v2)", "--preset", "qzhou-embedding"]
    done = subprocess.run(
        [sys.executable, "-m", "qzhou_eval.cli.main", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "huggingface.co" not in done.stderr, "the instructions command asked the hub"
    assert json.loads(done.stdout)["STSBenchmark"]["query_prefix"].startswith("Instruct: ")
