"""Every failure a user can cause: exit code 2, one line ``qzhou-eval: error: ...`` naming the fix, no traceback.

Each case is (name, argv, a fragment the message must hold). Placeholders in argv are filled from
the ``world`` fixture: broken model folders, damaged data folders, result folders, configs.
"""

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from qzhou_eval.cli.main import main

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
STS = ["--tasks", "STSBenchmark"]


def _run(*extra):
    return [
        "run",
        *STS,
        "--model_name_or_path",
        "{model}",
        "--model_name",
        MODEL_NAME,
        "--data_dir",
        "{data}",
        "--output_dir",
        "{tmp}/out",
        *extra,
    ]


CASES = [
    # run: selection
    ("no benchmark, no tasks", ["run", "--output_dir", "{tmp}/o"], "pass --benchmark NAME"),
    ("empty --tasks", ["run", "--tasks", "", "--output_dir", "{tmp}/o"], "names nothing"),
    (
        "empty --task_types",
        ["run", "--benchmark", "MTEB(eng, v2)", "--task_types", ",", "--output_dir", "{tmp}/o"],
        "names nothing",
    ),
    ("unknown benchmark", ["run", "--benchmark", "MTEB(eng, v9)", "--output_dir", "{tmp}/o"], "closest"),
    ("unknown task", ["run", "--tasks", "STSBenchmrk", "--output_dir", "{tmp}/o"], "closest: ['STSBenchmark'"),
    (
        "task outside the suite",
        ["run", "--benchmark", "MTEB(eng, v2)", "--tasks", "LCQMC", "--output_dir", "{tmp}/o"],
        "is not part of MTEB(eng, v2)",
    ),
    (
        "unknown task type",
        ["run", "--benchmark", "MTEB(eng, v2)", "--task_types", "Sts", "--output_dir", "{tmp}/o"],
        "did you mean 'STS'",
    ),
    ("shard out of range", ["run", *STS, "--shard", "5/2", "--output_dir", "{tmp}/o"], "out of range"),
    ("shard malformed", ["run", *STS, "--shard", "half", "--output_dir", "{tmp}/o"], "must look like I/N"),
    (
        "--only_available without --data_dir",
        ["run", *STS, "--only_available", "--output_dir", "{tmp}/o"],
        "needs --data_dir",
    ),
    # run: options
    ("bad pooling", _run("--pooling_mode", "median"), "is not a valid Pooling, must be one of"),
    ("bad dtype", _run("--dtype", "float8"), "not a valid dtype"),
    ("zero batch size", _run("--batch_size", "0"), "must be a positive integer"),
    ("negative dim", _run("--dim", "-5"), "must be a positive integer"),
    ("dim beyond the model", _run("--dim", "4096"), "dim"),
    ("template without slot", _run("--prompt_template", "no slot here"), "exactly one {text} slot"),
    ("token prepending without template", _run("--token_prepending", "true"), "needs a prompt_template"),
    ("bad layer spec", _run("--token_prepending_layers", "a-b"), "layer indices like '1-7'"),
    ("unknown preset", _run("--preset", "qzhou-embeding"), "did you mean 'qzhou-embedding'"),
    ("model name without org", _run("--model_name", "justname"), "must look like org/name"),
    ("revision that is a path", _run("--revision", "a/b"), "is not a revision"),
    # run: served models (--backend openai)
    ("openai backend without a URL", _run("--backend", "openai"), "needs --base_url URL"),
    ("a URL without the openai backend", _run("--base_url", "http://127.0.0.1:9/v1"), "for --backend openai"),
    ("a URL without a scheme", _run("--backend", "openai", "--base_url", "127.0.0.1:9/v1"), "must start with http"),
    (
        "nobody at the URL",
        _run("--backend", "openai", "--base_url", "http://127.0.0.1:9/v1", "--max_retries", "0"),
        "is the server up at that URL?",
    ),
    (
        "instructions turned off explicitly",
        _run("--instructions", "reference", "--use_instruction", "false"),
        "drop one of them",
    ),
    ("unknown instruction variant", _run("--use_instruction", "true", "--instructions", "leaderbord"), "reference"),
    ("instruction file that is not JSON", _run("--instructions", "{bad_json}"), "fix the file, or pass a bundled"),
    ("cuda without cuda", _run("--device", "cuda"), "use --device cpu"),
    ("nonsense device", _run("--device", "toaster"), "not a valid device"),
    ("cache_dir is a file", _run("--cache_dir", "{a_file}"), "is a file; pass a folder, or 'none'"),
    (
        "output_dir under a file",
        ["run", *STS, "--model_name_or_path", "{model}", "--data_dir", "{data}", "--output_dir", "{a_file}/out"],
        "is not writable",
    ),
    # run: model folders
    ("model path missing", _run("--model_name_or_path", "{tmp}/nowhere"), "does not exist; check the path"),
    ("model path is a file", _run("--model_name_or_path", "{a_file}"), "is a file; pass the checkpoint folder"),
    ("model folder without config", _run("--model_name_or_path", "{empty_dir}"), "holds neither config.json"),
    ("model folder with broken config.json", _run("--model_name_or_path", "{broken_config}"), "re-download"),
    ("model folder without weights", _run("--model_name_or_path", "{no_weights}"), "holds no weight files"),
    ("model config not UTF-8", _run("--model_name_or_path", "{binary_config}"), "is not valid JSON"),
    # run: data
    ("data_dir missing", _run("--data_dir", "{tmp}/nodata"), "does not exist"),
    ("data_dir without the task", _run("--data_dir", "{empty_dir}"), "not usable"),
    ("split file missing", _run("--data_dir", "{data_missing}"), "does not exist; copy the task folder again"),
    ("split file truncated", _run("--data_dir", "{data_truncated}"), "copy the file again"),
    ("split file without a needed column", _run("--data_dir", "{data_columns}"), "lacks column(s) ['score']"),
    ("README YAML broken", _run("--data_dir", "{data_yaml}"), "YAML"),
    # run: output folder
    (
        "other options over finished results",
        [
            "run",
            "--benchmark",
            "MTEB(eng, v2)",
            *STS,
            "--model_name_or_path",
            "{model}",
            "--model_name",
            MODEL_NAME,
            "--data_dir",
            "{data}",
            "--output_dir",
            "{finished}",
            "--normalize",
            "false",
        ],
        "pass --overwrite",
    ),
    # report / compare / submit
    ("report of a missing folder", ["report", "{tmp}/nothing", "--benchmark", "MTEB(eng, v2)"], "does not exist"),
    ("report on an unknown benchmark", ["report", "{finished}", "--benchmark", "MTEB(xx, v1)"], "MTEB(xx, v1)"),
    (
        "report --out exists",
        ["report", "{finished}", "--benchmark", "MTEB(eng, v2)", "--out", "{a_file}"],
        "pass --force",
    ),
    (
        "report over a result that is not UTF-8",
        ["report", "{binary_result}", "--benchmark", "MTEB(eng, v2)"],
        "not valid UTF-8 JSON",
    ),
    ("compare a missing folder", ["compare", "{tmp}/nothing", "{finished}"], "does not exist"),
    (
        "compare with nothing in common",
        ["compare", "{finished}", "{other_task_run}", "--benchmark", "MTEB(eng, v2)"],
        "nothing to compare",
    ),
    ("compare negative threshold", ["compare", "{finished}", "{finished}", "--max-task-drop", "-1"], ">= 0"),
    (
        "submit with a damaged model_meta.json",
        ["submit", "{bad_meta_run}", "--out", "{tmp}/sub", "--allow-partial"],
        "not a valid mteb model_meta.json",
    ),
    ("submit a partial run", ["submit", "{finished}", "--out", "{tmp}/sub2"], "--allow-partial"),
    (
        "submit under a revision that is a path",
        ["submit", "{finished}", "--out", "{tmp}/sub3", "--allow-partial", "--revision", "../../etc"],
        "is not a revision",
    ),
    # synth
    ("synth config missing", ["synth", "{tmp}/none.yaml"], "does not exist"),
    ("synth config not YAML", ["synth", "{bad_json}"], "malformed YAML"),
    # train
    ("train config missing", ["train", "{tmp}/none.yaml"], "does not exist"),
    (
        "train config value of the wrong type",
        ["train", "{train_config}", "learning_rate=fast"],
        "TrainConfig.learning_rate must be a number, got 'fast'",
    ),
    ("train override without =", ["train", "{train_config}", "max_steps"], "must look like key=value"),
    ("train config not YAML", ["train", "{bad_json}"], "malformed YAML"),
    ("train dataset without path", ["train", "{train_no_path}"], "needs a 'path'"),
    ("train unknown key", ["train", "{train_config}", "learning_rte=1"], "unknown config keys ['learning_rte']"),
    # instructions / mirror / encode
    ("instructions for an unknown benchmark", ["instructions", "--benchmark", "MTEB(eng, v7)"], "MTEB(eng, v7)"),
    ("mirror without a selection", ["mirror", "--out", "{tmp}/m"], "pass --benchmark NAME or --tasks"),
    # plan
    (
        "plan on an unknown GPU",
        ["plan", "--tasks", "STSBenchmark", "--device", "H900", "--output_dir", "{tmp}/p"],
        "H900",
    ),
    (
        "plan with --mfu but no GPU",
        ["plan", "--tasks", "STSBenchmark", "--mfu", "0.5", "--output_dir", "{tmp}/p"],
        "--mfu",
    ),
    (
        "plan of a model that is not here",
        ["plan", "--tasks", "STSBenchmark", "-m", "someone/absent-model", "--output_dir", "{tmp}/p"],
        "--preset",
    ),
    ("plan of an unknown task", ["plan", "--tasks", "STSBenchmrk", "--output_dir", "{tmp}/p"], "closest"),
    ("encode with no texts", ["encode", "--model_name_or_path", "{model}"], "no texts given"),
    (
        "encode with a bad pooling",
        ["encode", "x", "--model_name_or_path", "{model}", "--pooling_mode", "max"],
        "is not a valid Pooling, must be one of",
    ),
    # issue 21's campaign: checkpoints
    (
        "truncated safetensors",
        _run("--output_dir", "{tmp}/campaign-1", "--model_name_or_path", "{truncated_weights}"),
        "truncated or damaged",
    ),
    (
        "safetensors with a garbage header",
        _run("--output_dir", "{tmp}/campaign-2", "--model_name_or_path", "{garbage_weights}"),
        "not a readable safetensors",
    ),
    (
        "config.json is a JSON list",
        _run("--output_dir", "{tmp}/campaign-3", "--model_name_or_path", "{config_list}"),
        "is a JSON list, not an object",
    ),
    (
        "unknown model_type",
        _run("--output_dir", "{tmp}/campaign-4", "--model_name_or_path", "{unknown_type}"),
        "its weights cannot be loaded",
    ),
    (
        "model folder without tokenizer files",
        _run("--output_dir", "{tmp}/campaign-5", "--model_name_or_path", "{no_tokenizer}"),
        "holds no tokenizer files",
    ),
    # instruction files
    (
        "instruction file not UTF-8",
        _run("--output_dir", "{tmp}/campaign-6", "--instructions", "{instr_binary}"),
        "is not UTF-8 text",
    ),
    (
        "instruction template not a string",
        _run("--output_dir", "{tmp}/campaign-7", "--instructions", "{instr_template}"),
        "'template' must be a string",
    ),
    (
        "document_side_tasks not a list",
        _run("--output_dir", "{tmp}/campaign-8", "--instructions", "{instr_docside}"),
        "must be a list of task names",
    ),
    (
        "user instruction file with extends",
        _run("--output_dir", "{tmp}/campaign-9", "--instructions", "{instr_extends}"),
        "bundled variant files only",
    ),
    (
        "instruction file with a duplicate key",
        _run("--output_dir", "{tmp}/campaign-10", "--instructions", "{instr_dup}"),
        "is given twice",
    ),
    (
        "instruction entry with a misspelt key",
        _run("--output_dir", "{tmp}/campaign-11", "--instructions", "{instr_typo}"),
        "unknown key(s) ['document']",
    ),
    # state of the output folder
    (".qzhou is a file", _run("--output_dir", "{state_file}"), "is a file, not a folder"),
    (".qzhou/lock is a folder", _run("--output_dir", "{lock_dir}"), "lock file"),
    ("result path is a folder", _run("--output_dir", "{result_dir}"), "is a folder, not a file"),
    ("record path is a folder", _run("--output_dir", "{record_dir}"), "is a folder, not a file"),
    # data folders
    (
        "data path leaves the task folder",
        _run("--output_dir", "{tmp}/campaign-12", "--data_dir", "{data_escape}"),
        "leaves the task folder",
    ),
    (
        "absolute data path",
        _run("--output_dir", "{tmp}/campaign-13", "--data_dir", "{data_absolute}"),
        "leaves the task folder",
    ),
    (
        "null score in a late row",
        _run("--output_dir", "{tmp}/campaign-14", "--data_dir", "{data_null}"),
        "line 1200 has no value for 'score'",
    ),
    # numbers
    ("compare NaN task threshold", ["compare", "{finished}", "{finished}", "--max-task-drop", "nan"], "got nan"),
    ("compare infinite mean threshold", ["compare", "{finished}", "{finished}", "--max-mean-drop", "inf"], "got inf"),
    ("collapse threshold above 1", _run("--output_dir", "{tmp}/campaign-15", "--collapse_error", "1.5"), "in [0, 1]"),
    (
        "clean percentile above 100",
        ["clean", "--input", "{rows}", "--kind", "pair", "--out", "{tmp}/c.jsonl", "--drop_percentile", "150"],
        "in [0, 100)",
    ),
    ("train temperature NaN", ["train", "{train_config}", "temperature=.nan"], "temperature must be a finite number"),
    ("empty --benchmark", ["run", "--benchmark", "", *STS, "--output_dir", "{tmp}/o"], "names nothing"),
    ("train config with a duplicate key", ["train", "{train_dup}"], "is given twice"),
    # outputs never overwrite inputs
    (
        "clean --out is its --input",
        ["clean", "--input", "{rows}", "--kind", "pair", "--out", "{rows}"],
        "is also an input",
    ),
    (
        "clean --out exists",
        ["clean", "--input", "{rows}", "--kind", "pair", "--out", "{other_rows}"],
        "pass --overwrite",
    ),
    (
        "encode --save exists",
        ["encode", "x", "--model_name_or_path", "{model}", "--save", "{existing_npy}"],
        "--overwrite",
    ),
    (
        "report --out is a result file",
        ["report", "{finished}", "--benchmark", "MTEB(eng, v2)", "--out", "{finished_result}", "--force"],
        "is also an input",
    ),
    ("card --out exists", ["card", "{finished}", "--out", "{a_file}"], "pass --overwrite"),
    (
        "mine --out is a data file",
        ["mine", "--data_dir", "{scifact}", "--out", "{scifact_queries}"],
        "write rows to a .jsonl",
    ),
    ("mine --out exists", ["mine", "--data_dir", "{scifact}", "--out", "{other_rows}"], "pass --overwrite"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, minilm_path, shared_dir, finished_run):
    tmp = tmp_path_factory.mktemp("bad-inputs")
    model = Path(minilm_path)
    places = {"tmp": str(tmp), "model": minilm_path, "data": str(shared_dir / "mteb-data")}

    a_file = tmp / "a-file"
    a_file.write_text("x")
    empty_dir = tmp / "empty"
    empty_dir.mkdir()
    broken = tmp / "broken-config"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"0")
    binary = tmp / "binary-config"
    binary.mkdir()
    (binary / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    (binary / "model.safetensors").write_bytes(b"0")
    no_weights = tmp / "no-weights"
    shutil.copytree(model, no_weights, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    bad_json = tmp / "bad.json"
    bad_json.write_text("{: nope")
    places.update(
        a_file=str(a_file),
        empty_dir=str(empty_dir),
        broken_config=str(broken),
        binary_config=str(binary),
        no_weights=str(no_weights),
        bad_json=str(bad_json),
    )

    def data_copy(name: str) -> Path:
        return _sts_copy(tmp, name, shared_dir, places)

    (data_copy("data_missing") / "test.jsonl.gz").unlink()
    split = data_copy("data_truncated") / "test.jsonl.gz"
    split.write_bytes(split.read_bytes()[:-100])
    with gzip.open(data_copy("data_columns") / "test.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"sentence1": "a", "sentence2": "b", "label": 1}) + "\n")
    (data_copy("data_yaml") / "README.md").write_text("---\nconfigs: [unclosed\n---\n")

    finished = tmp / "finished"
    shutil.copytree(finished_run[0], finished)
    places["finished"] = str(finished)
    result_dir = next(finished.glob("results/*/*/STSBenchmark.json")).parent
    binary_run = tmp / "binary-result" / result_dir.parent.name / result_dir.name
    shutil.copytree(result_dir, binary_run)
    (binary_run / "STSBenchmark.json").write_bytes(b'\xff{"scores": 1}')
    places["binary_result"] = str(binary_run.parent.parent)
    bad_meta = tmp / "bad-meta" / result_dir.parent.name / result_dir.name
    shutil.copytree(result_dir, bad_meta)
    (bad_meta / "model_meta.json").write_text("[1, 2")
    places["bad_meta_run"] = str(bad_meta.parent.parent)
    other = tmp / "other-task" / result_dir.parent.name / result_dir.name
    shutil.copytree(result_dir, other)
    data = json.loads((other / "STSBenchmark.json").read_text())
    data["task_name"] = "SICK-R"
    (other / "SICK-R.json").write_text(json.dumps(data))
    (other / "STSBenchmark.json").unlink()
    places["other_task_run"] = str(other.parent.parent)

    _campaign_world(tmp, model, shared_dir, finished, result_dir, places)

    train = tmp / "train.yaml"
    train.write_text(
        f"model: {minilm_path}\noutput_dir: {tmp}/trained\nmax_steps: 1\nstage: 2\ndatasets:\n"
        f"  - name: sts\n    path: {tmp}/rows.jsonl\n    kind: pair\n"
    )
    no_path = tmp / "train-no-path.yaml"
    no_path.write_text(
        f"model: {minilm_path}\noutput_dir: {tmp}/t\nmax_steps: 1\ndatasets:\n  - name: a\n    kind: pair\n"
    )
    places.update(train_config=str(train), train_no_path=str(no_path))
    return places


def _sts_copy(tmp: Path, name: str, shared_dir: Path, places: dict) -> Path:
    """A writable copy of STSBenchmark under ``tmp/name``, its root registered as ``{name}``."""
    root = tmp / name
    shutil.copytree(shared_dir / "mteb-data" / "STSBenchmark", root / "STSBenchmark")
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    places[name] = str(root)
    return root / "STSBenchmark"


def _campaign_world(tmp: Path, model: Path, shared_dir: Path, finished: Path, result_dir: Path, places: dict) -> None:
    """The broken files of issue 21's campaign; weights are linked, not copied, where the case never reads them."""

    def model_copy(name: str, skip=()) -> Path:
        folder = tmp / name
        folder.mkdir()
        for path in model.rglob("*"):
            rel = path.relative_to(model)
            if path.is_dir() or rel.name in skip:
                continue
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            if rel.name == "model.safetensors":
                (folder / rel).symlink_to(path)
            else:
                shutil.copy(path, folder / rel)
        places[name] = str(folder)
        return folder

    weights = (model / "model.safetensors").read_bytes()
    for name, data in (("truncated_weights", weights[: 10 << 20]), ("garbage_weights", b"\xff" * 4096)):
        target = model_copy(name) / "model.safetensors"
        target.unlink()
        target.write_bytes(data)
    (model_copy("config_list") / "config.json").write_text("[1, 2]")
    config = json.loads((model / "config.json").read_text())
    (model_copy("unknown_type") / "config.json").write_text(json.dumps({**config, "model_type": "frobnicator"}))
    model_copy("no_tokenizer", skip=("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"))

    instr = {"tasks": {"STSBenchmark": {"instruction": "Retrieve semantically similar text", "documents": True}}}
    files = {
        "instr_binary": b'{"STSBenchmark": "caf\xe9"}',
        "instr_template": json.dumps({**instr, "template": 5}).encode(),
        "instr_docside": json.dumps({"STSBenchmark": "x", "document_side_tasks": 5}).encode(),
        "instr_extends": json.dumps({**instr, "extends": "reference"}).encode(),
        "instr_dup": b'{"STSBenchmark": "a", "STSBenchmark": "b"}',
        "instr_typo": json.dumps({"tasks": {"STSBenchmark": {"instruction": "x", "document": True}}}).encode(),
    }
    for name, data in files.items():
        (tmp / f"{name}.json").write_bytes(data)
        places[name] = str(tmp / f"{name}.json")

    def finished_copy(name: str) -> Path:
        out = tmp / name
        shutil.copytree(finished, out)
        places[name] = str(out)
        return out

    state = finished_copy("state_file") / ".qzhou"
    shutil.rmtree(state)
    state.write_text("not a folder")
    lock = finished_copy("lock_dir") / ".qzhou" / "lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    out = finished_copy("result_dir")
    result = next(out.glob("results/*/*/STSBenchmark.json"))
    result.unlink()
    result.mkdir()
    out = finished_copy("record_dir")
    record = next(out.glob(".qzhou/records/*/*/STSBenchmark.json"))
    record.unlink()
    record.mkdir()
    places["finished_result"] = str(next(finished.glob("results/*/*/STSBenchmark.json")))

    def data_copy(name: str) -> Path:
        return _sts_copy(tmp, name, shared_dir, places)

    for name, replacement in (("data_escape", "../../STSBenchmark/test.jsonl.gz"), ("data_absolute", None)):
        folder = data_copy(name)
        readme = folder / "README.md"
        target = replacement or str((folder / "test.jsonl.gz").resolve())
        readme.write_text(readme.read_text().replace("test.jsonl.gz", target, 1))
    split = data_copy("data_null") / "test.jsonl.gz"
    with gzip.open(split, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    rows[1199]["score"] = None
    with gzip.open(split, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)

    pairs = [{"text_a": f"a sentence {i}", "text_b": f"another sentence {i}", "score": 1.0} for i in range(3)]
    for name in ("rows", "other_rows"):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
        places[name] = str(tmp / f"{name}.jsonl")
    (tmp / "existing.npy").write_bytes(b"keep me")
    places["existing_npy"] = str(tmp / "existing.npy")
    places["scifact"] = str(shared_dir / "mteb-data" / "SciFact")
    places["scifact_queries"] = str(shared_dir / "mteb-data" / "SciFact" / "queries" / "test.jsonl.gz")
    (tmp / "train-dup.yaml").write_text("model: a\nmodel: b\noutput_dir: o\ndatasets: []\n")
    places["train_dup"] = str(tmp / "train-dup.yaml")


def test_outputs_that_are_inputs_are_left_intact(world, capsys):
    """Campaign: clean --input rows.jsonl --out rows.jsonl left 0 of 3 rows; encode --save overwrote silently."""
    rows = Path(world["rows"]).read_bytes()
    assert main(["clean", "--input", world["rows"], "--kind", "pair", "--out", world["rows"]]) == 2
    assert Path(world["rows"]).read_bytes() == rows
    link = Path(world["tmp"]) / "link-to-rows.jsonl"
    link.symlink_to(world["rows"])
    assert main(["clean", "--input", world["rows"], "--kind", "pair", "--out", str(link)]) == 2, "through a link too"
    assert Path(world["rows"]).read_bytes() == rows
    assert main(["encode", "x", "--model_name_or_path", world["model"], "--save", world["existing_npy"]]) == 2
    assert Path(world["existing_npy"]).read_bytes() == b"keep me"
    capsys.readouterr()


@pytest.mark.parametrize(("name", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_with_exit_code_2(world, name, argv, fragment, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    try:
        code = main([arg.format(**world) for arg in argv])
    except SystemExit as exc:  # argparse's own usage errors also exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit {code}; stderr:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    assert "qzhou-eval: error:" in err and fragment in err, f"{name}: {fragment!r} not in:\n{err}"


def test_the_catalogue_reaches_every_subcommand():
    """Every subcommand the CLI has (read from its parser, so a new one is caught) has bad-input cases here."""
    import argparse

    from qzhou_eval.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    covered = {argv[0] for _, argv, _ in CASES}
    assert set(commands) <= covered, f"no bad-input case for {sorted(set(commands) - covered)}"


def test_an_internal_error_is_reported_as_a_bug_with_a_log_file(capsys):
    from qzhou_eval.cli.handling import run_handled

    def broken(args):
        raise ZeroDivisionError("boom")

    assert run_handled(lambda: broken(None)) == 1
    err = capsys.readouterr().err
    assert "internal error (a bug in qzhou-eval" in err and "Traceback" not in err
    log = Path(err.split("the traceback is in ")[1].split(";")[0])
    assert "ZeroDivisionError: boom" in log.read_text()
    assert run_handled(lambda: broken(None), internal_error_code=3) == 3, "compare's internal errors are not 'a drop'"


def test_sigterm_stops_a_command_like_ctrl_c(tmp_path):
    import subprocess
    import sys
    import time

    code = (
        "import os, signal, time\nfrom qzhou_eval.cli.handling import run_handled\n"
        "def work():\n    print('ready', flush=True)\n    time.sleep(30)\n"
        "raise SystemExit(run_handled(work))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted; finished tasks are saved" in err and "Traceback" not in err
