"""What a suite run is asked to do, validated at construction and resolved without loading torch or mteb."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.outputs import check_revision_name
from qzhou_eval.option_table import check_options
from qzhou_eval.record.readability_limits import ReadabilityLimits
from qzhou_eval.remote.endpoint import WEIGHTS_NOT_HASHED, EndpointSettings
from qzhou_eval.resolution.backends import capabilities
from qzhou_eval.resolution.resolve import Request
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.run_manifest import RunManifest
from qzhou_eval.runs import manifest as manifests

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
    backend: str = "hf"  # a row of resolution/backends.py (the server's EndpointSettings in ``endpoint``)
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
        if capabilities(self.backend).served != (self.endpoint is not None):
            raise InvalidOptionError("--backend openai and --base_url go together: pass both, or neither")
        check_revision_name(self.revision, "--revision")
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

    def request(self, task_names: Sequence[str] = ()) -> Request:
        """What this run asks for, for :func:`~qzhou_eval.resolution.resolve.resolve` (called once per run)."""
        return Request(
            self.model_name_or_path,
            options=dict(self.encoder_options),
            preset=self.preset,
            backend=self.backend,
            endpoint=self.endpoint,
            device=self.device,
            results_revision=self.revision,
            model_name=self.model_name,
            use_instruction=self.use_instruction,
            instructions=self.instructions,
            benchmark=self.benchmark,
            tasks=tuple(task_names),
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


def request_manifest(config: RunConfig, spec: RunSpec) -> RunManifest:
    """The manifest header of this run (task entries are merged in under the folder lock)."""
    choice, instructions = spec.choice, spec.instructions
    return manifests.new_manifest(
        benchmark=config.suite,
        model={
            "name": spec.model_name,
            "path": spec.source.name_or_path,
            "revision": spec.revision,
            "content_digest": spec.source.content_digest if spec.weights_here else WEIGHTS_NOT_HASHED,
            "hub_revision": config.revision or (spec.info.hub_revision if spec.info else None),
        },
        inputs=spec.inputs.as_record(),
        explicit_options=dict(sorted(spec.explicit.items())),
        preset={"name": choice.preset.name, "how": choice.how} if choice else None,
        instructions={"origin": instructions.origin, "variant": instructions.variant} if instructions else None,
        data_dir=str(config.data_dir) if config.data_dir else None,
        backend=spec.backend.name,
    )
