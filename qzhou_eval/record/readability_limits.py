"""The readability thresholds a run enforces and a report flags by (encoder/readability.py measures; model-free)."""

from __future__ import annotations

from dataclasses import dataclass

from qzhou_eval.integrity.numbers import FRACTION, check_number


@dataclass(frozen=True)
class ReadabilityLimits:
    """Collapse share that is an error, and the unknown/collapse share that earns a warning."""

    collapse_error: float = 0.9
    warn: float = 0.05

    def __post_init__(self) -> None:
        check_number("collapse_error", self.collapse_error, FRACTION)
        check_number("readability warn", self.warn, FRACTION)
