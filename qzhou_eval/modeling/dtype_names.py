"""The dtype names qzhou-eval accepts, torch-free (``modeling/loading.py`` maps them to torch dtypes)."""

from __future__ import annotations

from typing import Any

from qzhou_eval.errors import InvalidOptionError

# Every dtype spelling accepted, and the name it stands for (torch maps names to dtypes).
DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


def canonical_dtype_name(dtype: Any) -> str | None:
    """``'bf16'`` -> ``'bfloat16'``; None stays None (the device decides).

    Raises:
        InvalidOptionError: a dtype name not in :data:`DTYPE_NAMES`.
    """
    if dtype is None:
        return None
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise InvalidOptionError.for_choice("dtype", dtype, sorted(set(DTYPE_NAMES.values())))
    return DTYPE_NAMES[key]
