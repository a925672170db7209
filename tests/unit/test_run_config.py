"""RunConfig validates itself; option precedence; -v/-q levels; instruction variants; layer specs."""

import logging

import pytest

from qzhou_eval.cli.handling import log_level
from qzhou_eval.cli.main import build_parser
from qzhou_eval.encoder.inputs import InputFormatter
from qzhou_eval.errors import InstructionError, InvalidOptionError
from qzhou_eval.instructions.registry import available_variants, load_benchmark_instructions, resolve_instructions
from qzhou_eval.option_table import parse_layers
from qzhou_eval.runs.config import RunConfig


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"benchmark": None}, r"RunConfig.benchmark or RunConfig.tasks"),
        ({"shard": (2, 2)}, r"RunConfig.shard must be \(I, N\)"),
        (
            {"encoder_options": {"batch_size": 0}},
            r"RunConfig.encoder_options\['batch_size'\]: batch_size must be a positive integer",
        ),
        ({"encoder_options": {"poolng": "mean"}}, r"unknown option\(s\) \['poolng'\]"),
        ({"use_instruction": "yes"}, r"RunConfig.use_instruction must be True or False"),
        ({"tasks": "STS12"}, r"RunConfig.tasks must be a list of names"),
    ],
)
def test_run_config_names_the_bad_field(kwargs, match):
    base = {"model_name_or_path": "m", "benchmark": "MTEB(eng, v2)", "output_dir": "out"}
    with pytest.raises(InvalidOptionError, match=match):
        RunConfig(**{**base, **kwargs})


def test_run_config_of_named_tasks():
    config = RunConfig(model_name_or_path="m", benchmark=None, output_dir="out", tasks=["SciFact"])
    assert config.suite == "tasks" and str(config.output_dir) == "out"


def test_verbosity_flags_before_or_after_the_subcommand():
    assert log_level() == logging.INFO
    assert log_level(verbose=1) == logging.DEBUG and log_level(quiet=1) == logging.WARNING
    assert log_level(quiet=5) == logging.ERROR
    parser = build_parser()
    after = parser.parse_args(["run", "--tasks", "SciFact", "-qq"])
    before = parser.parse_args(["-v", "run", "--tasks", "SciFact"])
    assert (after.quiet, after.verbose) == (2, 0) and (before.quiet, before.verbose) == (0, 1)


def test_leaderboard_variant_differs_from_reference_only_on_the_medrxiv_tasks():
    assert available_variants("MTEB(eng, v2)") == ["leaderboard-2025-08", "reference"]
    reference = load_benchmark_instructions("MTEB(eng, v2)")
    published = load_benchmark_instructions("MTEB(eng, v2)", "leaderboard-2025-08")
    changed = sorted(t for t in reference.tasks if reference.tasks[t] != published.tasks[t])
    assert changed == ["MedrxivClusteringP2P.v2", "MedrxivClusteringS2S.v2"]
    for task in changed:
        assert published.query_prefix(task) == published.document_prefix(task) == ""
        assert reference.document_prefix(task).startswith("Instruct: Identify the main category of Medrxiv")
    assert (
        load_benchmark_instructions("MTEB(cmn, v1)", "leaderboard-2025-08").tasks
        == load_benchmark_instructions("MTEB(cmn, v1)").tasks
    )


def test_instructions_spec_is_a_variant_or_a_file(tmp_path):
    with pytest.raises(
        InvalidOptionError, match=r"'leaderbord' is not a valid instruction variant.*'leaderboard-2025-08'"
    ):
        resolve_instructions("MTEB(eng, v2)", "leaderbord")
    mine = tmp_path / "mine.json"
    mine.write_text('{"tasks": {"SciFact": {"instruction": "Verify the claim"}}}')
    assert (
        resolve_instructions(None, str(mine), ["SciFact"]).query_prefix("SciFact")
        == "Instruct: Verify the claim\nQuery: "
    )
    assert resolve_instructions(None, None, ["STSBenchmark"]).benchmark == "MTEB(eng, v2)", (
        "named tasks: the covering set"
    )
    with pytest.raises(InstructionError, match=r"no bundled instruction set covers the task\(s\) \['SciFact'\]"):
        resolve_instructions(None, None, ["SciFact"])


@pytest.mark.parametrize("spec,expected", [("1-7", (1, 2, 3, 4, 5, 6, 7)), ("1,3-4", (1, 3, 4)), ([2, 1], (1, 2))])
def test_token_prepending_layer_specs(spec, expected):
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["1-x", [], "-1"])
def test_bad_token_prepending_layers(spec):
    with pytest.raises(InvalidOptionError, match="token_prepending_layers"):
        parse_layers(spec)


def test_lowercase_applies_to_the_whole_input_like_do_lower_case():
    assert InputFormatter(None, lowercase=True)(["Hello World"], "Instruct: X\nQuery: ") == [
        "instruct: x\nquery: hello world"
    ]


def test_instructions_flag_turns_instructions_on_and_an_explicit_false_is_refused():
    """Campaign: --instructions FILE was silently ignored without --use_instruction true."""
    base = dict(model_name_or_path="m", benchmark="MTEB(eng, v2)", output_dir="out")
    assert RunConfig(**base, instructions="reference").use_instruction is True
    assert RunConfig(**base).use_instruction is False, "the reference scripts' default stays off"
    assert RunConfig(**base, use_instruction=True).use_instruction is True
    with pytest.raises(InvalidOptionError, match="drop one of them"):
        RunConfig(**base, instructions="reference", use_instruction=False)


def test_resolved_values_decide_identity_not_spelling(minilm_path):
    from qzhou_eval.resolution.resolve import Request, resolve

    def identity(device, **options):
        return resolve(Request(minilm_path, options=options, device=device, ranks=1)).identity_options()

    implicit = identity("cpu")
    spelled = identity("cpu", pooling="mean", normalize=True, dtype="fp32", batch_size=7, token_prepending_layers="2-3")
    assert implicit == spelled, "defaults spelled out, batch size and unused layers are not a change"
    assert identity("cuda")["dtype"] == "bfloat16"


def test_mteb_run_spellings_build_the_same_config_as_the_reference_flags(tmp_path):
    from qzhou_eval.cli.main import build_parser
    from qzhou_eval.cli.run_cmd import build_config

    out = str(tmp_path / "out")
    reference = [
        "run",
        "--model_name_or_path",
        str(tmp_path),
        "--tasks",
        "STS12,STS13",
        "--output_dir",
        out,
        "--batch_size",
        "8",
        "--task_types",
        "STS",
        "--revision",
        "abc",
    ]
    mteb_style = [
        "run",
        "-m",
        str(tmp_path),
        "-t",
        "STS12",
        "STS13",
        "--output-folder",
        out,
        "--batch-size",
        "8",
        "--task-types",
        "STS",
        "--model-revision",
        "abc",
        "--verbosity",
        "3",
        "--overwrite-strategy",
        "only-missing",
    ]
    mixed = [
        "run",
        "--model",
        str(tmp_path),
        "--tasks",
        "STS12",
        "STS13",
        "--output-dir",
        out,
        "--batch-size",
        "8",
        "--task-types",
        "STS",
        "--model_revision",
        "abc",
    ]
    configs = [build_config(build_parser().parse_args(argv), None) for argv in (reference, mteb_style, mixed)]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].tasks == ["STS12", "STS13"] and configs[0].revision == "abc"
    assert configs[0].encoder_options == {"batch_size": 8}


def test_one_benchmark_per_run_and_a_bare_command_shows_help(capsys):
    from qzhou_eval.cli.main import main

    assert main([]) == 0
    assert "usage: qzhou-eval" in capsys.readouterr().out
    assert main(["run", "-b", "MTEB(eng, v2)", "MTEB(cmn, v1)"]) == 2
    assert "one benchmark per run" in capsys.readouterr().err
