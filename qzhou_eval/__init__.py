"""qzhou-eval: reproduce the QZhou-Embedding MTEB / C-MTEB numbers exactly with mteb 2.x.

The public names are imported on first use, so light commands (a finished run's resume check,
``qzhou-eval instructions``) start without loading torch or mteb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use
    from qzhou_eval.api import load_encoder
    from qzhou_eval.encoder.embedder import Encoder
    from qzhou_eval.encoder.mteb_model import QZhouMtebModel
    from qzhou_eval.instructions.registry import InstructionSet, load_benchmark_instructions
    from qzhou_eval.report.regression import compare_runs
    from qzhou_eval.report.submission import submit
    from qzhou_eval.report.tables import build_report
    from qzhou_eval.resolution.resolve import Request, resolve
    from qzhou_eval.resolution.spec import RunSpec
    from qzhou_eval.runs.config import RunConfig
    from qzhou_eval.runs.runner import run_suite
    from qzhou_eval.train.config import TrainConfig
    from qzhou_eval.train.trainer import train

__version__ = "0.1.0"

_PUBLIC = {
    "load_encoder": "qzhou_eval.api",
    "Encoder": "qzhou_eval.encoder.embedder",
    "Request": "qzhou_eval.resolution.resolve",  # torch-free: what a run asks for
    "resolve": "qzhou_eval.resolution.resolve",
    "RunSpec": "qzhou_eval.resolution.spec",
    "InstructionSet": "qzhou_eval.instructions.registry",
    "load_benchmark_instructions": "qzhou_eval.instructions.registry",
    "QZhouMtebModel": "qzhou_eval.encoder.mteb_model",
    "run_suite": "qzhou_eval.runs.runner",
    "RunConfig": "qzhou_eval.runs.config",  # torch-free: building a config imports no model code
    "build_report": "qzhou_eval.report.tables",
    "compare_runs": "qzhou_eval.report.regression",
    "submit": "qzhou_eval.report.submission",
    "train": "qzhou_eval.train.trainer",
    "TrainConfig": "qzhou_eval.train.config",
}

__all__ = [  # spelled out, as type checkers and linters read it; a test keeps it equal to _PUBLIC
    "Encoder",
    "InstructionSet",
    "QZhouMtebModel",
    "Request",
    "RunConfig",
    "RunSpec",
    "TrainConfig",
    "__version__",
    "build_report",
    "compare_runs",
    "load_benchmark_instructions",
    "load_encoder",
    "resolve",
    "run_suite",
    "submit",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'qzhou_eval' has no attribute {name!r}")
