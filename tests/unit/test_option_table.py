"""The option table is the one list of encoder options: load_encoder's keywords and the CLI flags cover it."""

from __future__ import annotations

import argparse
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qzhou_eval import load_encoder
from qzhou_eval.cli.main import build_parser
from qzhou_eval.cli.options import encoder_options_given
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.option_table import ENCODER_OPTIONS, HARNESS_DEFAULTS, OPTIONS_BY_NAME, Kind, identity_record
from qzhou_eval.options import ResolvedOption, ResolvedOptions, check_values

# A value of each kind the flag parser accepts, and what the option then holds.
_SAMPLE = {
    Kind.BOOL: ("false", False),
    Kind.MAYBE_BOOL: ("true", True),
    Kind.POSITIVE_INT: ("3", 3),
    Kind.NON_NEGATIVE_INT: ("0", 0),
    Kind.TEXT: ("x {text}", "x {text}"),
    Kind.LAYERS: ("1-3", "1-3"),
    Kind.DIMS: ("8,16", "8,16"),
}


def test_load_encoder_has_one_keyword_per_option_with_the_table_default():
    params = inspect.signature(load_encoder).parameters
    for spec in ENCODER_OPTIONS:
        assert spec.name in params, f"load_encoder has no keyword {spec.name}"
        assert params[spec.name].default.value == spec.default


@pytest.mark.parametrize("command", ["run", "encode"])
def test_every_option_is_a_flag_that_reaches_the_encoder(command):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    for spec in ENCODER_OPTIONS:
        text, value = _SAMPLE.get(spec.kind, (spec.choices[-1] if spec.choices else "last", None))
        args = parser.parse_args(["--tasks", "STS12", spec.flag, text] if command == "run" else [spec.flag, text])
        given_options = encoder_options_given(args)
        assert list(given_options) == [spec.name], f"{spec.flag} must set only {spec.name}"
        if value is not None:
            assert given_options[spec.name] == value


def test_the_defaults_pass_the_checks():
    check_values(ResolvedOptions({k: ResolvedOption(v, "default") for k, v in HARNESS_DEFAULTS.items()}))


@given(st.dictionaries(st.sampled_from(sorted(OPTIONS_BY_NAME)), st.integers(-3, 5) | st.booleans() | st.none()))
def test_identity_holds_exactly_the_identity_options_away_from_their_introduction_default(values):
    record = identity_record(values)
    for name, value in values.items():
        spec = OPTIONS_BY_NAME[name]
        kept = spec.identity and not (spec.identity_from and value == spec.default)
        assert (name in record) == kept


@given(st.integers(-5, 5) | st.booleans() | st.text(max_size=3) | st.none())
def test_positive_int_rows_refuse_exactly_what_is_not_a_positive_integer(value):
    spec = OPTIONS_BY_NAME["max_length"]
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if valid:
        spec.check(value)
    else:
        with pytest.raises(InvalidOptionError, match="max_length must be a positive integer"):
            spec.check(value)
