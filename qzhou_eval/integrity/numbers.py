"""One rule for numbers: every numeric option and config value is finite and inside its meaningful range.

A NaN compares false with every threshold, so a gate written as ``drop > limit`` with ``limit=nan``
can never fire; an infinite batch size or a percentile of 150 means nothing. Every command-line
flag, config field and API argument that takes a number is checked here, by name, with one message.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass
from typing import Any

from qzhou_eval.errors import InvalidOptionError


@dataclass(frozen=True)
class Range:
    """The meaningful values of a number: bounds (open or closed) and whether it must be whole."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    name: str | None = None  # how messages say it ("a positive integer"); derived from the bounds when None

    def describe(self) -> str:
        if self.name:
            return self.name
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return (
                f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


ANY = Range()
NON_NEGATIVE = Range(low=0)
POSITIVE = Range(low=0, low_open=True)
PERCENT = Range(low=0, high=100)
PERCENT_OPEN_TOP = Range(low=0, high=100, high_open=True)
FRACTION = Range(low=0, high=1)
OPEN_FRACTION = Range(low=0, high=1, low_open=True, high_open=True)
COSINE = Range(low=-1, high=1)
POSITIVE_INT = Range(low=1, integer=True, name="a positive integer")
NON_NEGATIVE_INT = Range(low=0, integer=True, name="a non-negative integer")


def check_number(name: str, value: Any, allowed: Range = ANY, *, none_ok: bool = False) -> Any:
    """``value`` itself when it is a number inside ``allowed``.

    Raises:
        InvalidOptionError: naming the option, the value and the meaningful range.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidOptionError(f"{name} must be {allowed.describe()}, got {value!r}")
    if not isinstance(value, (int, float)):  # numpy scalars
        value = value.item() if hasattr(value, "item") else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidOptionError(
            f"{name} must be {allowed.describe()}, got {value!r} (NaN and infinities mean nothing here)"
        )
    if allowed.integer and not isinstance(value, int):
        raise InvalidOptionError(f"{name} must be {allowed.describe()}, got {value!r}")
    if not allowed.contains(value):
        raise InvalidOptionError(f"{name} must be {allowed.describe()}, got {value!r}")
    return int(value) if allowed.integer else value


def number_arg(allowed: Range = ANY):
    """An argparse ``type=`` that parses and checks with :func:`check_number` (argparse adds the flag's name)."""

    def parse(text: str):
        try:
            value: float | int = int(text) if allowed.integer else float(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number; it must be {allowed.describe()}") from None
        try:
            return check_number("the value", value, allowed)
        except InvalidOptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "integer" if allowed.integer else "number"  # argparse names the type in its message
    return parse


def check_numeric_fields(obj: Any, where: str, ranges: dict[str, Range]) -> None:
    """Every number a dataclass holds (and every number in its list fields) is finite and inside ``ranges[field]``.

    Fields without an entry in ``ranges`` must still be finite: no config value is ever NaN or infinite.

    Raises:
        InvalidOptionError: naming ``where.field``.
    """
    import dataclasses

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        allowed = ranges.get(f.name, ANY)
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                check_number(f"{where}.{f.name}", item, allowed)
