"""The package top: every public name resolves, type checkers see them, and configs import no torch."""

import subprocess
import sys
from pathlib import Path

import qzhou_eval

REPO = Path(__file__).resolve().parents[2]


def test_every_public_name_resolves_and_is_declared_for_type_checkers():
    init = (REPO / "qzhou_eval" / "__init__.py").read_text()
    assert set(qzhou_eval.__all__) == {*qzhou_eval._PUBLIC, "__version__"}
    for name in qzhou_eval.__all__:
        assert getattr(qzhou_eval, name) is not None
        if name != "__version__":
            assert f"import {name}" in init or f", {name}" in init, f"{name} is missing from the TYPE_CHECKING block"
    assert (REPO / "qzhou_eval" / "py.typed").is_file()


def test_configs_import_without_torch_or_mteb():
    code = (
        "import sys; from qzhou_eval import RunConfig, TrainConfig; "
        "print(sorted(m for m in ('torch', 'mteb', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
