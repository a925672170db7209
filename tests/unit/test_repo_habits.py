"""README and CI cannot drift: .ci/run runs the README's test command verbatim."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    match = re.search(r"# 2\. [^\n]*\n(?P<command>[^\n]+)", block)
    assert match, "the README's first code block must hold step 2, the test command"
    command = match["command"].strip()
    assert "pytest" in command and "ruff check" in command
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert command in ci, f".ci/run must run {command!r} exactly"


def test_a_missing_optional_package_names_the_package_and_the_install_command(capsys):
    """Campaign: a missing `kernels` under a newer transformers was reported as a bug in qzhou-eval."""
    from qzhou_eval.cli.handling import run_handled

    def missing_module():
        raise ModuleNotFoundError("No module named 'kernels'", name="kernels")

    def missing_library():
        raise ImportError("This model requires the kernels library, run `pip install kernels`")

    def own_bug():
        raise ModuleNotFoundError("No module named 'qzhou_eval.nowhere'", name="qzhou_eval.nowhere")

    for action in (missing_module, missing_library):
        assert run_handled(action) == 2
        err = capsys.readouterr().err
        assert "qzhou-eval: error:" in err and "pip install kernels" in err and "internal error" not in err, err
    assert run_handled(own_bug) == 1, "an import of qzhou-eval's own code that fails is a bug"
    assert "internal error" in capsys.readouterr().err


def test_one_rule_for_numbers_refuses_nan_infinity_and_out_of_range():
    import math

    import pytest

    from qzhou_eval.errors import InvalidOptionError
    from qzhou_eval.integrity.numbers import (
        COSINE,
        NON_NEGATIVE,
        PERCENT_OPEN_TOP,
        POSITIVE,
        POSITIVE_INT,
        check_number,
    )

    for value, allowed in (
        (math.nan, NON_NEGATIVE),
        (math.inf, POSITIVE),
        (-1e-9, NON_NEGATIVE),
        (0.0, POSITIVE),
        (100.0, PERCENT_OPEN_TOP),
        (1.5, COSINE),
        (2.5, POSITIVE_INT),
        (True, POSITIVE_INT),
        ("3", POSITIVE_INT),
        (0, POSITIVE_INT),
    ):
        with pytest.raises(InvalidOptionError, match="must be"):
            check_number("x", value, allowed)
    assert check_number("x", 0.0, NON_NEGATIVE) == 0.0 and check_number("x", 99.9, PERCENT_OPEN_TOP) == 99.9
