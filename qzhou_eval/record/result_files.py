"""A result file's main score, read as mteb reads it but without importing mteb (reports never load it)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def main_score_of(path: Path) -> float | None:
    """The main score mteb's ``TaskResult.get_score()`` gives for a result file, read without importing mteb.

    The mean of ``main_score`` over every split's entries that name at least one language; None when
    the file is unreadable or holds no such entry.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        values = [
            float(entry["main_score"])
            for entries in data["scores"].values()
            for entry in entries
            if entry.get("languages")
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not values or not all(math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)
