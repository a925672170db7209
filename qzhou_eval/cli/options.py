"""Argument types shared by the subcommands (the reference scripts' true|false flags)."""

from __future__ import annotations

import argparse


def parse_bool(value: str) -> bool:
    """'true'/'false' (as the reference scripts take them), plus 1/0 and yes/no."""
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return True
    if lowered in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean; use true or false")
