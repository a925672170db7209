"""What a suite run is asked to do, validated at construction and resolved without loading torch or mteb."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval._ranks import world_size
from qzhou_eval.encoder.readability import ReadabilityLimits
from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import InstructionSet, resolve_instructions
from qzhou_eval.integrity.outputs import check_revision_name
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo, read_checkpoint
from qzhou_eval.modeling.source import ModelSource, is_local_folder, resolve_source
from qzhou_eval.option_table import check_options
from qzhou_eval.options import (
    ResolvedOptions,
    check_backend,
    check_values,
    fit_to_server,
    refuse_reference_batching,
    resolve_options,
)
from qzhou_eval.presets import PresetChoice, select_preset
from qzhou_eval.remote.endpoint import WEIGHTS_NOT_HASHED, EndpointSettings, ServedModel
from qzhou_eval.results.layout import NO_REVISION, RESULTS_DIRNAME, model_folder
from qzhou_eval.run_manifest import RunManifest
from qzhou_eval.runs import manifest as manifests
from qzhou_eval.runs.provenance import RunInputs, identity_options

CACHE_DIRNAME = ".embedding_cache"
# The suite label of a run that names tasks rather than a benchmark (its manifest: qzhou-run-tasks.json).
TASKS_SUITE = "tasks"


@dataclass
class RunConfig:
    """Everything a suite run needs; the CLI only fills this in. Bad values raise here, naming the field.

    ``benchmark`` is any benchmark mteb knows; without one, ``tasks`` names mteb tasks directly.
    ``preset`` None recognises a published checkpoint, ``"none"`` turns that off. ``instructions`` is
    an instruction variant name or a file (None: the preset's variant, else the default one).
    """

    model_name_or_path: str | None
    benchmark: str | None
    output_dir: Path
    encoder_options: dict[str, Any] = field(default_factory=dict)  # explicit load_encoder keywords only
    preset: str | None = None
    use_instruction: bool | None = None  # None: on exactly when ``instructions`` is given
    instructions: str | Path | None = None
    tasks: list[str] = field(default_factory=list)
    exclude_tasks: list[str] = field(default_factory=list)
    task_types: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    cache_dir: Path | None | bool = True  # True: inside output_dir; False/None: off
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    model_name: str | None = None
    device: str | None = None
    fail_fast: bool = False
    backend: str = "hf"  # hf (transformers), vllm (local engine), openai (a server: EndpointSettings in ``endpoint``)
    endpoint: EndpointSettings | None = None
    revision: str | None = None  # the revision results are filed under (default: the checkpoint's fingerprint)
    readability: ReadabilityLimits = field(default_factory=ReadabilityLimits)  # encoder/readability.py
    predictions: bool = True  # keep per-sample evidence (runs/evidence.py) for regression statistics

    def __post_init__(self) -> None:
        if not self.benchmark and not self.tasks:
            raise InvalidOptionError("RunConfig.benchmark or RunConfig.tasks must be given (--benchmark or --tasks)")
        if self.output_dir is None or str(self.output_dir) == "":
            raise InvalidOptionError("RunConfig.output_dir must be a folder path")
        self.output_dir = Path(self.output_dir)
        for name in ("tasks", "exclude_tasks", "task_types"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise InvalidOptionError(f"RunConfig.{name} must be a list of names, got {value!r}")
        if self.use_instruction is None:
            self.use_instruction = self.instructions is not None
        elif self.use_instruction is False and self.instructions is not None:
            raise InvalidOptionError(
                f"--instructions {self.instructions} was given with --use_instruction false; "
                "drop one of them (--instructions alone turns instructions on)"
            )
        for name in ("use_instruction", "overwrite", "fail_fast", "predictions"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(f"RunConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.shard is not None:
            ok = (
                isinstance(self.shard, tuple)
                and len(self.shard) == 2
                and all(isinstance(v, int) for v in self.shard)
                and self.shard[1] >= 1
                and 0 <= self.shard[0] < self.shard[1]
            )
            if not ok:
                raise InvalidOptionError(f"RunConfig.shard must be (I, N) with 0 <= I < N, got {self.shard!r}")
        check_backend(self.backend)
        check_revision_name(self.revision, "--revision")
        if (self.backend == "openai") != (self.endpoint is not None):
            raise InvalidOptionError("--backend openai and --base_url go together: pass both, or neither")
        check_options(self.encoder_options, "RunConfig.encoder_options")
        if not isinstance(self.readability, ReadabilityLimits):
            raise InvalidOptionError(f"RunConfig.readability must be a ReadabilityLimits, got {self.readability!r}")
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        if isinstance(self.cache_dir, (str, Path)):
            self.cache_dir = Path(self.cache_dir)
            if self.cache_dir.exists() and not self.cache_dir.is_dir():
                raise InvalidOptionError(
                    f"--cache_dir {str(self.cache_dir)!r} is a file; pass a folder, or 'none' "
                    "to run without the embedding cache"
                )

    @property
    def suite(self) -> str:
        """The benchmark, or ``tasks`` for a run of named tasks (names the manifest file)."""
        return self.benchmark or TASKS_SUITE


@dataclass
class TaskFailure:
    """A task that raised: what, and where its full traceback was written."""

    error_type: str
    message: str
    traceback_file: str

    def as_record(self) -> dict[str, str]:
        return {"type": self.error_type, "message": self.message, "traceback_file": self.traceback_file}


@dataclass
class RunSummary:
    results_dir: Path
    scores: dict[str, float]
    ran: list[str]
    skipped: list[str]
    encode_stats: EncodeStats | None
    failed: dict[str, TaskFailure] = field(default_factory=dict)


def model_name_for(config: RunConfig, source: ModelSource) -> str:
    """``org/name`` the results are filed under: --model_name, the hub id, or local/<folder>."""
    if config.model_name:
        if "/" not in config.model_name:
            raise InvalidOptionError(f"--model_name must look like org/name, got {config.model_name!r}")
        return config.model_name
    return source.default_model_name


@dataclass(frozen=True)
class ResolvedRequest:
    """A run's request with every default decided, before any weights load: what its results are bound to."""

    source: ModelSource
    model_name: str
    info: CheckpointInfo | None  # None: a served model without local files
    choice: PresetChoice | None
    options: ResolvedOptions
    instructions: InstructionSet | None
    inputs: RunInputs


def resolve_checkpoint(
    config: RunConfig, served: ServedModel | None = None
) -> tuple[ModelSource, CheckpointInfo | None, PresetChoice | None]:
    """The checkpoint's location, its small files, and the preset that applies (no weights loaded).

    A served model (``--backend openai``) needs no files: without a local folder it is known by name only
    (``--model_name_or_path`` as a hub id, else ``--served_model``, else what the server lists).
    """
    path = config.model_name_or_path
    if config.backend == "openai" and not is_local_folder(path):
        name = path or config.endpoint.served_model or (served or served_model(config.endpoint)).name
        return (
            ModelSource(name, None, config.revision or NO_REVISION[1]),
            None,
            select_preset(config.preset, None, name),
        )
    if path is None:
        if config.preset is None or config.preset.lower() == "none":
            raise InvalidOptionError("--model_name_or_path is required unless --preset names the model")
        from qzhou_eval.presets import load_preset

        path = load_preset(config.preset).model
    source = resolve_source(path)
    info = read_checkpoint(source)
    source.check_weights(info.layout.transformer_subfolder if info.layout else "")
    return source, info, select_preset(config.preset, info)


def served_model(settings: EndpointSettings) -> ServedModel:
    """What the server says it serves (GET /models: its model's name and context length)."""
    from qzhou_eval.remote.endpoint import EndpointClient

    return EndpointClient(settings).served


def resolve_request(config: RunConfig, task_names: list[str]) -> ResolvedRequest:
    """Resolve the checkpoint, preset, options and instruction set of ``config`` (torch only to ask about CUDA).

    Raises:
        InvalidOptionError, ModelNotFoundError, ModelFormatError, InstructionError: naming the fix.
    """
    served = served_model(config.endpoint) if config.backend == "openai" else None  # asked once per run
    source, info, choice = resolve_checkpoint(config, served)
    options = resolve_options(config.encoder_options, choice, info)
    check_values(options)
    refuse_reference_batching(options, config.backend, world_size())  # before any rank loads a model
    if config.backend == "openai":  # the record holds the length the server truncates to, as the cache does
        options = fit_to_server(options, served.max_model_len)
    if config.backend == "vllm":
        from qzhou_eval.encoder.vllm_backend import check_vllm_installed, check_vllm_options

        check_vllm_options(options, info, config.device)
        check_vllm_installed()
    if config.backend == "openai":
        from qzhou_eval.remote.endpoint import check_endpoint_options

        check_endpoint_options(options)
    instructions = instructions_for(config, choice, task_names)
    model_name = model_name_for(config, source)
    identity = identity_options(options, config.device)
    if config.backend == "openai":  # a server's output is its own system, never the local weights' results
        identity["served_by"] = f"endpoint {config.endpoint.served_model or served.name}"
        identity["dtype"] = "served"
    inputs = RunInputs(
        model_name,
        config.revision or source.fingerprint(),
        identity,
        config.use_instruction,
        instructions.sha256() if instructions else None,
    )
    return ResolvedRequest(source, model_name, info, choice, options, instructions, inputs)


def request_manifest(config: RunConfig, request: ResolvedRequest) -> RunManifest:
    """The manifest header of this request (task entries are merged in under the folder lock)."""
    choice, instructions = request.choice, request.instructions
    return manifests.new_manifest(
        benchmark=config.suite,
        model={
            "name": request.model_name,
            "path": request.source.name_or_path,
            "revision": request.inputs.revision,
            "content_digest": request.source.content_digest if request.info else WEIGHTS_NOT_HASHED,
            "hub_revision": config.revision or (request.info.hub_revision if request.info else None),
        },
        inputs=request.inputs.as_record(),
        explicit_options=dict(sorted(config.encoder_options.items())),
        preset={"name": choice.preset.name, "how": choice.how} if choice else None,
        instructions={"origin": instructions.origin, "variant": instructions.variant} if instructions else None,
        data_dir=str(config.data_dir) if config.data_dir else None,
        backend=config.backend,
    )


def results_dir_for(output_dir: Path, model_name: str, revision: str) -> Path:
    """mteb's cache layout, so ``mteb.ResultCache(output_dir)`` reads a run as it is:
    ``<output_dir>/results/<org__model>/<revision>/``. A run folder made before that layout
    (``<output_dir>/<org__model>/<revision>/``) keeps resuming where its results are."""
    folder = model_folder(model_name)
    legacy = Path(output_dir) / folder / revision
    if legacy.is_dir():
        return legacy
    return Path(output_dir) / RESULTS_DIRNAME / folder / revision


def instructions_for(config: RunConfig, choice: PresetChoice | None, task_names: list[str]) -> InstructionSet | None:
    """The instruction set a run uses: none, --instructions (variant or file), the preset's variant, or the default."""
    if not config.use_instruction:
        return None
    spec = config.instructions or (choice.preset.instructions if choice else None)
    return resolve_instructions(config.benchmark, spec, task_names)
