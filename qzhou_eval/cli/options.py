"""Argument types shared by the subcommands (the reference scripts' true|false flags)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from qzhou_eval.integrity.numbers import NON_NEGATIVE_INT, POSITIVE_INT, number_arg
from qzhou_eval.option_table import ENCODER_OPTIONS, Kind


def parse_bool(value: str) -> bool:
    """'true'/'false' (as the reference scripts take them), plus 1/0 and yes/no."""
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return True
    if lowered in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean; use true or false")


def add_encoder_flags(p: argparse.ArgumentParser) -> None:
    """One flag per row of the option table (qzhou_eval/option_table.py), unset unless given."""
    for spec in ENCODER_OPTIONS:
        kwargs = {"type": _FLAG_TYPES.get(spec.kind), "choices": spec.choices or None}
        p.add_argument(spec.flag, default=None, help=spec.help, **{k: v for k, v in kwargs.items() if v})


_FLAG_TYPES = {
    Kind.BOOL: parse_bool,
    Kind.MAYBE_BOOL: parse_bool,
    Kind.POSITIVE_INT: number_arg(POSITIVE_INT),
    Kind.NON_NEGATIVE_INT: number_arg(NON_NEGATIVE_INT),
}


def encoder_options_given(args) -> dict:
    """The encoder options the user gave on the command line (the others stay unset, so presets apply)."""
    given = {spec.name: getattr(args, spec.flag.removeprefix("--")) for spec in ENCODER_OPTIONS}
    return {name: value for name, value in given.items() if value is not None}


def parse_list(value: str | Sequence[str] | None) -> list[str]:
    """A comma list ("STS12,STS13") or a sequence, stripped, without empties."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]
