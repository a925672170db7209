"""The resolved run: one immutable object every entry point and backend asks, and the one identity of its vectors.

Both identities a run has derive from :meth:`RunSpec.identity_options`: the result record's
(:class:`~qzhou_eval.record.inputs.RunInputs`) and the embedding cache's (:meth:`RunSpec.cache_identity`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from qzhou_eval.instructions.registry import InstructionSet, route_prefix
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.modeling.pooling_mode import Pooling
from qzhou_eval.modeling.source import ModelSource
from qzhou_eval.option_table import cache_identity_record, identity_record, parse_layers
from qzhou_eval.options import Batching, ResolvedOption, ResolvedOptions
from qzhou_eval.presets import PresetChoice
from qzhou_eval.record.inputs import RunInputs
from qzhou_eval.remote.endpoint import EndpointSettings, ServedModel
from qzhou_eval.resolution.backends import CAPABILITIES, Backend, Capabilities
from qzhou_eval.results.layout import results_dir_for

SERVED_DTYPE = "served"  # what a record says of the dtype of vectors a server computed


@dataclass(frozen=True)
class RunSpec:
    """Everything decided about a run before any weights load.

    ``options`` holds every encoder option with its source (the batching actually used filled in);
    ``instructions`` is None exactly when instructions are off; ``info`` is None for a model known only by
    name (served, or planned from a preset's published shape, then in ``architecture``).
    """

    backend: Capabilities
    source: ModelSource
    info: CheckpointInfo | None
    choice: PresetChoice | None
    options: ResolvedOptions
    batching: Batching
    dtype: str  # the computing dtype's canonical name, or "served"
    device: str | None  # as asked (None: CUDA when present)
    device_type: str  # "cuda" or "cpu": where the default dtype and batching were decided
    model_name: str
    results_revision: str | None  # the revision results are filed under; None: the checkpoint's fingerprint
    instructions: InstructionSet | None = None
    tasks: tuple[str, ...] = ()
    endpoint: EndpointSettings | None = None
    served: ServedModel | None = None
    architecture: Mapping[str, Any] | None = None
    explicit: Mapping[str, Any] = field(default_factory=dict)  # the options the caller gave

    def __getitem__(self, option: str) -> Any:
        return self.options[option]

    # Typed views of the options the encode path reads (the encoder and its backends ask these).
    @property
    def pooling(self) -> Pooling:
        return Pooling.from_str(self.options["pooling"])

    @property
    def normalize(self) -> bool:
        return bool(self.options["normalize"])

    @property
    def dim(self) -> int | None:
        return self.options["dim"]

    @property
    def max_length(self) -> int:
        return int(self.options["max_length"])

    @property
    def bidirectional(self) -> bool | None:
        return self.options["bidirectional"]

    @property
    def prompt_template(self) -> str | None:
        return self.options["prompt_template"]

    @property
    def lowercase(self) -> bool:
        return bool(self.options["lowercase"])

    @property
    def token_prepending(self) -> bool:
        return bool(self.options["token_prepending"])

    @property
    def token_prepending_layers(self) -> tuple[int, ...] | None:
        """The layers Token Prepending hooks, None when it is off."""
        return parse_layers(self.options["token_prepending_layers"]) if self.token_prepending else None

    @property
    def trust_remote_code(self) -> bool:
        return bool(self.options["trust_remote_code"])

    @cached_property
    def revision(self) -> str:
        """The revision results are filed under: the asked one, else the checkpoint's content fingerprint
        (computed on first use: the ``instructions`` command never hashes weights)."""
        return self.results_revision or self.source.fingerprint()

    @property
    def use_instruction(self) -> bool:
        return self.instructions is not None

    @property
    def weights_here(self) -> bool:
        """The checkpoint's files are on this machine (a served model may have none)."""
        return self.info is not None

    def identity_options(self) -> dict[str, Any]:
        """The option values an embedding depends on, in comparable JSON form: what a result's record holds."""
        record = identity_record({k: v["value"] for k, v in self.options.as_record().items()})
        record["dtype"] = self.dtype
        if not record.get("token_prepending"):
            record["token_prepending_layers"] = None  # unused, so never a difference
        if self.served is not None:  # a server's output is its own system, never the local weights' results
            record["served_by"] = f"endpoint {self.endpoint.served_model or self.served.name}"
        return record

    @cached_property
    def inputs(self) -> RunInputs:
        """Everything besides the data that decides the scores (the record's identity)."""
        instructions_sha = self.instructions.sha256() if self.instructions is not None else None
        return RunInputs(
            self.model_name, self.revision, self.identity_options(), self.use_instruction, instructions_sha
        )

    def cache_identity(self) -> dict[str, Any]:
        """What a cached embedding depends on: the model's bytes (or what the server says it serves) and the same
        identity options as the record, less what the model part already says (the server's name)."""
        options = cache_identity_record(self.identity_options())
        options.pop("served_by", None)
        if self.served is not None:  # what the server says it serves; its weights were never seen
            return {"endpoint": self.served.identity(), "options": options}
        return {"model": self.source.name_or_path, "weights": self.source.content_digest, "options": options}

    def prefixes_sha256(self, task: str) -> str:
        """Digest of the exact prefixes ``task``'s queries and documents get."""
        sides = [route_prefix(self.instructions, task, side, self.use_instruction) for side in ("query", "document")]
        return hashlib.sha256(json.dumps(sides, ensure_ascii=False).encode()).hexdigest()

    def results_dir(self, output_dir: Path) -> Path:
        return results_dir_for(output_dir, self.model_name, self.revision)

    def for_local_check(self) -> RunSpec:
        """This run on the local weights with transformers in float32 on the CPU: what a served model is checked
        against (encoder/endpoint_backend.ServedModelCheck)."""
        options = {**self.options.options, "dtype": ResolvedOption("float32", "endpoint check")}
        return replace(
            self,
            backend=CAPABILITIES[Backend.HF],
            options=ResolvedOptions(options, self.options.preset),
            dtype="float32",
            device="cpu",
            device_type="cpu",
            endpoint=None,
            served=None,
        )
