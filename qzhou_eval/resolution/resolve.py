"""``resolve``: the one function that turns a request into a :class:`RunSpec`, running every check once.

Order: the backend's row, what the server serves (asked once), the checkpoint and its preset, the options
with their sources (explicit > preset > checkpoint > default, capped by the position table), what the
backend cannot honour or the server decides, the cross-option rules, the dtype and batching for the device,
the instruction set (coverage checked for the tasks), and the name and revision results are filed under.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval._ranks import world_size
from qzhou_eval.errors import InvalidOptionError, ModelNotFoundError
from qzhou_eval.instructions.registry import InstructionSet, resolve_instructions
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo, read_checkpoint
from qzhou_eval.modeling.dtype_names import canonical_dtype_name
from qzhou_eval.modeling.source import ModelSource, is_local_folder, resolve_source
from qzhou_eval.option_table import REFERENCE
from qzhou_eval.options import (
    EXPLICIT,
    ResolvedOption,
    ResolvedOptions,
    capped_max_length,
    check_values,
    fit_to_server,
    resolve_batching,
    resolve_options,
    with_batching,
)
from qzhou_eval.presets import Preset, PresetChoice, load_preset, select_preset
from qzhou_eval.remote.endpoint import EndpointClient, EndpointSettings, ServedModel
from qzhou_eval.resolution.backends import Capabilities, capabilities
from qzhou_eval.resolution.spec import SERVED_DTYPE, RunSpec
from qzhou_eval.results.layout import NO_REVISION

logger = logging.getLogger(__name__)

SERVER_DECIDES = "the server's"  # the source of an option the serving system's configuration decides
NO_MODEL = "(no model)"  # the source of a request that names neither a checkpoint nor a preset


@dataclass(frozen=True)
class Request:
    """What the caller asked for, nothing decided: flags, ``load_encoder`` keywords or a plan's settings.

    ``preset`` None recognises a published checkpoint, ``"none"`` turns that off. ``instructions`` None with
    ``use_instruction`` True takes the preset's variant, else the default one. ``load_revision`` is the hub
    revision to load; ``results_revision`` the revision results are filed under (default: the checkpoint's
    fingerprint). ``weights_required`` False lets a published model whose files are elsewhere be resolved
    from its preset's published shape (the planner), and a request with neither checkpoint nor preset resolve
    its instructions alone (the ``instructions`` command).
    """

    model_name_or_path: str | None
    options: Mapping[str, Any] = field(default_factory=dict)  # explicit encoder options only
    preset: str | Preset | PresetChoice | None = None
    backend: str = "hf"
    endpoint: EndpointSettings | None = None
    device: str | None = None
    load_revision: str | None = None
    results_revision: str | None = None
    model_name: str | None = None
    use_instruction: bool = False
    instructions: str | Path | None = None
    benchmark: str | None = None
    tasks: Sequence[str] = ()
    weights_required: bool = True
    ranks: int | None = None  # processes sharing the run (None: torchrun's WORLD_SIZE, else 1)


def resolve(request: Request) -> RunSpec:
    """Decide everything about ``request`` once (no weights load; torch only to ask about CUDA).

    Raises:
        InvalidOptionError, ModelNotFoundError, ModelFormatError, InstructionError, EndpointError: naming the fix.
    """
    backend = capabilities(request.backend)
    if backend.served != (request.endpoint is not None):
        raise InvalidOptionError(
            f"--backend {backend.name} and --base_url: endpoint settings go with a served backend only; pass both "
            "--backend openai and --base_url, or neither"
        )
    backend.check_device(request.device)
    backend.check_installed()
    served = _served_model(request.endpoint) if backend.served else None  # asked once per run
    source, info, choice, architecture = _checkpoint(request, backend, served)
    options = resolve_options(dict(request.options), choice, info)
    if architecture is not None:  # the published shape's position table caps as a local config.json would
        capped = capped_max_length(
            options.options["max_length"], architecture["config"].get("max_position_embeddings"), architecture["source"]
        )
        options = ResolvedOptions({**options.options, "max_length": capped}, options.preset)
    check_values(options)
    if info is not None:
        _check_custom_code(info, options)
    backend.refuse(request.options, {k: options[k] for k in options.options}, info.model_type if info else None)
    _refuse_reference_over_ranks(options, request.ranks if request.ranks is not None else world_size())
    if served is not None and request.endpoint.verify_texts and info is None:
        raise InvalidOptionError(
            "--verify_endpoint compares the server with local weights: pass the checkpoint folder as "
            "--model_name_or_path, or --verify_endpoint 0"
        )
    if served is not None:  # the record holds the length the server truncates to, as the cache does
        options = _as_decided_by_server(fit_to_server(options, served.max_model_len), backend)
    device_type = _device_type(request.device)
    batching_device = backend.batching_device or device_type
    batching = resolve_batching(options, batching_device, backend.packs_tokens)
    options = with_batching(options, batching, _batching_label(backend, batching_device))
    dtype = SERVED_DTYPE if served is not None else _computing_dtype(options["dtype"], device_type)
    instructions = _instructions(request, choice)
    return RunSpec(
        backend=backend,
        source=source,
        info=info,
        choice=choice,
        options=options,
        batching=batching,
        dtype=dtype,
        device=request.device,
        device_type=device_type,
        model_name=_model_name(request, source),
        results_revision=request.results_revision or (None if info is not None else NO_REVISION[1]),
        instructions=instructions,
        tasks=tuple(request.tasks),
        endpoint=request.endpoint,
        served=served,
        architecture=architecture,
        explicit=dict(request.options),
    )


def _served_model(settings: EndpointSettings) -> ServedModel:
    """What the server says it serves (GET /models: its model's name and context length)."""
    return EndpointClient.discover(settings)


def _checkpoint(
    request: Request, backend: Capabilities, served: ServedModel | None
) -> tuple[ModelSource, CheckpointInfo | None, PresetChoice | None, Mapping[str, Any] | None]:
    """The checkpoint's location, its small files, the preset that applies and (planning a model whose files are
    elsewhere) its preset's published shape. A served model needs no files: without a local folder it is known
    by name only (the path as a hub id, else the settings' served model, else what the server lists)."""
    path = os.fspath(request.model_name_or_path) if request.model_name_or_path is not None else None
    if not backend.local_weights and not is_local_folder(path):
        name = path or request.endpoint.served_model or served.name
        choice = select_preset(request.preset, None, name)
        return ModelSource(name, None, request.load_revision or request.results_revision), None, choice, None
    if path is None and not request.weights_required and str(request.preset).lower() == "none":
        return ModelSource(NO_MODEL, None, None), None, None, None  # instructions only (the instructions command)
    if path is None:
        path = _preset_model(request.preset)
    try:
        source = resolve_source(path, request.load_revision)
    except ModelNotFoundError as missing:
        if request.weights_required:
            raise
        return _published_shape(request, path, missing)
    info = read_checkpoint(source)
    source.check_weights(info.layout.transformer_subfolder if info.layout else "")
    return source, info, select_preset(request.preset, info), None


def _preset_model(preset: str | Preset | PresetChoice | None) -> str:
    if preset is None or str(preset).lower() == "none":
        raise InvalidOptionError("--model_name_or_path is required unless --preset names the model")
    if isinstance(preset, PresetChoice):
        return preset.preset.model
    return preset.model if isinstance(preset, Preset) else load_preset(str(preset)).model


def _published_shape(request: Request, path: str, missing: ModelNotFoundError):
    choice = select_preset(request.preset, None, path)
    if choice is None or not choice.preset.architecture:
        raise ModelNotFoundError(
            f"{missing}. Without the model's files here, pass a local checkpoint folder, or a published model by "
            "--preset (qzhou-embedding, qzhou-embedding-zh) to use its published shape"
        ) from None
    return ModelSource(path, None, request.load_revision), None, choice, choice.preset.architecture


def _refuse_reference_over_ranks(options: ResolvedOptions, ranks: int) -> None:
    """The reference's batches are formed in one process; torchrun ranks would each batch a share."""
    if options["batching"] == REFERENCE and ranks > 1:
        raise InvalidOptionError(
            f"--batching reference forms the reference's batches in one process, not over {ranks} torchrun ranks; "
            f"launch it without torchrun (add --reference_gpus {ranks} to reproduce a {ranks}-GPU run's batches on "
            "one device), or use --batching budget under torchrun"
        )


def _as_decided_by_server(options: ResolvedOptions, backend: Capabilities) -> ResolvedOptions:
    """Options the server's own configuration decides keep the value the harness expects (the local check
    compares against it), but their source says the server decides them; none is ever 'explicit'."""
    out = dict(options.options)
    for name in backend.server_decides:
        expected = out[name]
        out[name] = ResolvedOption(expected.value, f"{SERVER_DECIDES} (expected: {expected.source})")
    return ResolvedOptions(out, options.preset)


def _check_custom_code(info: CheckpointInfo, options: ResolvedOptions) -> None:
    """Refuse to guess what a checkpoint's custom model code changes when nothing decides whether to run it.

    Raises:
        InvalidOptionError: custom code, no recognised preset, and trust_remote_code never set.
    """
    if not info.remote_code or options["trust_remote_code"] or options.preset is not None:
        return
    if options.source("trust_remote_code") == EXPLICIT:
        return
    stock = f"transformers' stock class for model_type {info.model_type!r}"
    raise InvalidOptionError(
        f"{info.source.name_or_path} declares custom model code ({info.remote_code}) and is not a published model "
        "qzhou-eval recognises, so it cannot tell what that code changes. Pass --trust_remote_code true "
        f"(trust_remote_code=True) to run it, or --trust_remote_code false to load the weights into {stock}"
    )


def cuda_surely_absent() -> bool:
    """True when no GPU device node exists (so torch would not find CUDA either), without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    return not any(Path(node).exists() for node in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))


def _device_type(device: str | None) -> str:
    """``cuda`` or ``cpu``: where the run computes. Imports torch only when no device is named and a GPU might
    be present."""
    if device is not None:
        return "cuda" if str(device).startswith("cuda") else "cpu"
    if cuda_surely_absent():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _computing_dtype(dtype: Any, device_type: str) -> str:
    """The explicit dtype, else bfloat16 on CUDA (how the leaderboard numbers were made) and float32 elsewhere."""
    if dtype is not None:
        return canonical_dtype_name(dtype)
    return "bfloat16" if device_type == "cuda" else "float32"


def _batching_label(backend: Capabilities, device_type: str) -> str:
    if backend.served:
        return "an endpoint (per request)"
    return device_type if backend.in_process else f"{backend.runs_here} on {device_type}"


def _instructions(request: Request, choice: PresetChoice | None) -> InstructionSet | None:
    """None (instructions off), --instructions (variant or file), the preset's variant, or the default; its
    coverage of the request's tasks checked."""
    if not request.use_instruction:
        return None
    spec = request.instructions or (choice.preset.instructions if choice else None)
    instructions = resolve_instructions(request.benchmark, spec, request.tasks)
    if request.tasks:
        instructions.check_coverage(list(request.tasks))
    return instructions


def _model_name(request: Request, source: ModelSource) -> str:
    """``org/name`` the results are filed under: the request's model name, the hub id, or local/<folder>."""
    if request.model_name:
        if "/" not in request.model_name:
            raise InvalidOptionError(f"--model_name must look like org/name, got {request.model_name!r}")
        return request.model_name
    return source.default_model_name
