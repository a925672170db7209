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
