"""What a suite run is asked to do, resolved without loading torch or mteb."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import InstructionSet, load_benchmark_instructions
from qzhou_eval.modeling.source import ModelSource, resolve_source
from qzhou_eval.runs import manifest as manifests

CACHE_DIRNAME = ".embedding_cache"


@dataclass
class RunConfig:
    """Everything a suite run needs; the CLI only fills this in."""

    model_name_or_path: str | None
    benchmark: str
    output_dir: Path
    encoder_options: dict[str, Any] = field(default_factory=dict)  # explicit load_encoder keywords only
    preset: str | None = None
    use_instruction: bool = False
    instructions_file: Path | None = None
    tasks: list[str] = field(default_factory=list)
    exclude_tasks: list[str] = field(default_factory=list)
    task_types: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    cache_dir: Path | None | bool = True  # True: inside output_dir; False/None: off
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    model_name: str | None = None
    device: str | None = None


@dataclass
class RunSummary:
    results_dir: Path
    scores: dict[str, float]
    ran: list[str]
    skipped: list[str]
    cache_hit_rate: float | None


def model_name_for(config: RunConfig, source: ModelSource) -> str:
    """``org/name`` the results are filed under: --model_name, the hub id, or local/<folder>."""
    if config.model_name:
        if "/" not in config.model_name:
            raise InvalidOptionError(f"--model_name must look like org/name, got {config.model_name!r}")
        return config.model_name
    return source.default_model_name


def resolve_model(config: RunConfig) -> tuple[ModelSource, str]:
    """The checkpoint location (no weights loaded) and the name its results are filed under."""
    path = config.model_name_or_path
    if path is None:
        if config.preset is None:
            raise InvalidOptionError("--model_name_or_path is required unless --preset names the model")
        from qzhou_eval.presets import load_preset

        path = load_preset(config.preset).model
    source = resolve_source(path)
    return source, model_name_for(config, source)


def request_manifest(
    config: RunConfig, source: ModelSource, model_name: str, instructions: InstructionSet | None
) -> dict[str, Any]:
    """The manifest of this request: what must match for results to be shared or resumed."""
    return manifests.new_manifest(
        benchmark=config.benchmark,
        model={"name": model_name, "path": source.name_or_path, "revision": source.fingerprint()},
        # Batch size and device never change an embedding, so they may differ between resumed runs.
        options={**{k: v for k, v in sorted(config.encoder_options.items()) if k != "batch_size"},
                 "preset": config.preset, "use_instruction": config.use_instruction},
        batch_size=config.encoder_options.get("batch_size"),
        instructions_sha256=instructions.sha256() if instructions else None,
        data_dir=str(config.data_dir) if config.data_dir else None,
    )


def results_dir_for(output_dir: Path, model_name: str, revision: str) -> Path:
    """mteb's layout: <output_dir>/<org__model>/<revision>/."""
    return Path(output_dir) / model_name.replace("/", "__").replace(" ", "_") / revision


def instructions_for(config: RunConfig) -> InstructionSet | None:
    """The instruction set a run uses: none, the user's file, or the bundled one of its suite."""
    if not config.use_instruction:
        return None
    if config.instructions_file:
        return InstructionSet.from_file(config.instructions_file)
    return load_benchmark_instructions(config.benchmark)
