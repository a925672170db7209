"""The one MiniLM run the integration tests start from: the bundled all-MiniLM-L6-v2 on STSBenchmark, offline.

``minilm_config`` for ``run_suite`` and ``minilm_argv`` for the command line describe the same run; a test
changes only what it is about (``**kw`` fields, ``*extra`` flags).
"""

from __future__ import annotations

from pathlib import Path

from qzhou_eval.runs.config import RunConfig

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # the name the leaderboard files it under
TASK = "STSBenchmark"


def minilm_config(model: str | Path, data_dir: Path, out: Path, **kw) -> RunConfig:
    """A run of the MiniLM at ``model`` on STSBenchmark in ``data_dir``, into ``out``; ``kw`` overrides fields."""
    base = dict(
        model_name_or_path=str(model),
        benchmark=None,
        output_dir=out,
        tasks=[TASK],
        data_dir=data_dir,
        model_name=MINILM_NAME,
    )
    return RunConfig(**{**base, **kw})


def minilm_argv(model: str | Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """The same run as flags of ``run`` (and of the reference runners); ``extra`` flags come last."""
    name = [] if "--model_name" in extra else ["--model_name", MINILM_NAME]
    return [
        "--model_name_or_path", str(model), *name, "--data_dir", str(data_dir), "--tasks", TASK,
        "--output_dir", str(out), *extra,
    ]  # fmt: skip
