"""The backend capability table: what each backend refuses, what the server decides, and that resolution asks it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.option_table import HARNESS_DEFAULTS, OPTIONS_BY_NAME
from qzhou_eval.resolution.backends import BACKEND_NAMES, CAPABILITIES, Backend, capabilities
from qzhou_eval.resolution.resolve import Request, resolve

PACKAGE = Path(__file__).resolve().parents[2] / "qzhou_eval"


def test_every_backend_has_a_row_and_rows_name_real_options():
    assert set(CAPABILITIES) == set(Backend)
    for row in CAPABILITIES.values():
        assert set(row.cannot) | row.server_decides <= set(OPTIONS_BY_NAME), row.name
    with pytest.raises(InvalidOptionError, match=r"must be one of \['hf', 'vllm', 'openai'\]"):
        capabilities("tgi")


@pytest.mark.parametrize("backend", [b for b in Backend if CAPABILITIES[b].cannot])
@pytest.mark.parametrize("option", ["token_prepending", "batching"])
def test_an_option_a_backend_cannot_honour_is_refused_naming_backend_and_flag(backend, option):
    row = CAPABILITIES[backend]
    value = row.cannot[option][0]
    values = {**HARNESS_DEFAULTS, option: value}
    with pytest.raises(
        InvalidOptionError, match=rf"--backend {backend.value} cannot take {OPTIONS_BY_NAME[option].flag}"
    ):
        row.refuse({option: value}, values, "qwen2")


def test_an_explicit_option_the_server_decides_is_refused_not_recorded_as_explicit():
    row = CAPABILITIES[Backend.OPENAI]
    for option in sorted(row.server_decides):
        with pytest.raises(InvalidOptionError, match=rf"the server decides {OPTIONS_BY_NAME[option].flag}"):
            row.refuse({option: HARNESS_DEFAULTS[option]}, HARNESS_DEFAULTS, None)
    row.refuse({"dim": 128, "max_length": 64}, HARNESS_DEFAULTS, None)  # what the harness applies is honoured


def test_bidirectional_through_vllm_only_for_the_model_types_it_switches():
    row = CAPABILITIES[Backend.VLLM]
    values = {**HARNESS_DEFAULTS, "bidirectional": True}
    row.refuse({}, values, "qwen3")
    with pytest.raises(InvalidOptionError, match="not model_type 'bert'; use --backend hf"):
        row.refuse({}, values, "bert")


def test_reference_batching_over_torchrun_ranks_is_refused_at_resolution(minilm_path):
    request = Request(minilm_path, options={"batching": "reference"}, device="cpu", ranks=2)
    with pytest.raises(InvalidOptionError, match="--reference_gpus 2"):
        resolve(request)
    assert resolve(Request(minilm_path, options={"batching": "reference"}, device="cpu", ranks=1)).batching.reference


def test_no_module_outside_the_table_compares_backend_names():
    """A backend's name appears as a string literal only in the table (and the CLI's flag default/help)."""
    allowed = {PACKAGE / "resolution" / "backends.py"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                for part in [node.left, *node.comparators]:
                    literals = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
                    if any(isinstance(x, ast.Constant) and x.value in BACKEND_NAMES for x in literals):
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"backend names compared outside resolution/backends.py: {found}"
