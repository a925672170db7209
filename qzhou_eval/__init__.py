"""qzhou-eval: reproduce the QZhou-Embedding MTEB / C-MTEB numbers exactly with mteb 2.x.

The public names are imported on first use, so light commands (a finished run's resume check,
``qzhou-eval instructions``) start without loading torch or mteb.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_encoder": "qzhou_eval.api",
    "Encoder": "qzhou_eval.encoder.embedder",
    "EncoderOptions": "qzhou_eval.encoder.embedder",
    "InstructionSet": "qzhou_eval.instructions.registry",
    "load_benchmark_instructions": "qzhou_eval.instructions.registry",
    "run_suite": "qzhou_eval.runs.runner",
    "RunConfig": "qzhou_eval.runs.runner",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'qzhou_eval' has no attribute {name!r}")
