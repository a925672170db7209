"""Encoder options and where each value comes from: explicit > preset > checkpoint > harness default.

The one owner of that precedence. Every resolved value keeps its source, so a run can print and
record why it used, say, ``max_length=256`` (the checkpoint's ``sentence_bert_config.json``) rather
than the harness's 1024. Torch-free: the runner resolves before it loads anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qzhou_eval.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_ROWS_PER_BATCH,
    DEFAULT_MAX_TOKENS_PER_BATCH,
    TOKEN_PREPENDING_LAYERS,
)
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.presets import PresetChoice

logger = logging.getLogger(__name__)

# The harness's own defaults, used when neither the user, a preset nor the checkpoint sets an option.
HARNESS_DEFAULTS: dict[str, Any] = {
    "pooling": "mean",
    "normalize": True,
    "dim": None,
    "mrl_dims": None,
    "max_length": DEFAULT_MAX_LENGTH,
    "lowercase": False,
    "bidirectional": None,
    "prompt_template": None,
    "token_prepending": False,
    "token_prepending_layers": TOKEN_PREPENDING_LAYERS,
    "dtype": None,
    "batch_size": None,  # a row cap: DEFAULT_MAX_ROWS_PER_BATCH under a token budget, else the reference's 32
    "max_tokens_per_batch": None,  # None: DEFAULT_MAX_TOKENS_PER_BATCH for the device; 0: fixed batches of batch_size
    "trust_remote_code": False,
}
# What an option becomes when the checkpoint's own code (trust_remote_code) already performs it.
_LEFT_TO_CHECKPOINT_CODE = {"bidirectional": None, "token_prepending": False}

# How texts are cut into forward passes: never changes an embedding beyond rounding noise, so a user
# may set these freely without contradicting a preset, and they are not part of a result's identity.
BATCHING_OPTIONS = frozenset({"batch_size", "max_tokens_per_batch"})

# Every dtype spelling accepted, and the name it stands for (the one owner; torch maps names to dtypes).
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

EXPLICIT, DEFAULT = "explicit", "default"

# What runs the model: transformers in this process, vLLM's engine, or an OpenAI-compatible server.
BACKENDS = ("hf", "vllm", "openai")


def check_backend(backend: str) -> str:
    """Raises InvalidOptionError for a backend name not in :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise InvalidOptionError.for_choice("backend", backend, BACKENDS)
    return backend


CHECKPOINT_CODE = "checkpoint's own code (trust_remote_code)"


@dataclass(frozen=True)
class ResolvedOption:
    """One option's value and its source: explicit, preset <name>, checkpoint: <file>, or default."""

    value: Any
    source: str


@dataclass(frozen=True)
class ResolvedOptions:
    """Every encoder option, resolved, with provenance; and the preset that took part (if any)."""

    options: dict[str, ResolvedOption]
    preset: PresetChoice | None = None

    def __getitem__(self, key: str) -> Any:
        return self.options[key].value

    def source(self, key: str) -> str:
        return self.options[key].source

    def as_record(self) -> dict[str, dict[str, Any]]:
        """JSON-ready ``{option: {"value", "source"}}`` for run manifests."""
        return {k: {"value": _plain(v.value), "source": v.source} for k, v in sorted(self.options.items())}

    def describe(self) -> list[str]:
        """One line per option, for the log at the start of a run."""
        width = max(len(k) for k in self.options)
        return [f"{k:<{width}} = {_plain(v.value)!r:<24} ({v.source})" for k, v in sorted(self.options.items())]


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def parse_layers(value: Sequence[int] | str) -> tuple[int, ...]:
    """Token Prepending layers from a list or a spec like ``"1-7"`` / ``"1,3,5"`` (0-based, inclusive).

    Inclusive as the QZhou-Embedding-Zh model card counts ("layer-1 to layer-7"); Fu et al.'s public
    code passes an exclusive end index, so their ``(1, 8)`` is this ``"1-7"``.

    Raises:
        InvalidOptionError: for anything that is not a non-empty set of non-negative integers.
    """
    try:
        if isinstance(value, str):
            layers: list[int] = []
            for part in (p.strip() for p in value.split(",") if p.strip()):
                first, _, last = part.partition("-")
                layers.extend(range(int(first), int(last or first) + 1))
        else:
            layers = [int(v) for v in value]
    except (TypeError, ValueError):
        raise InvalidOptionError(
            f"token_prepending_layers must be layer indices like '1-7' or [1, 2, 3], got {value!r}"
        ) from None
    if not layers or min(layers) < 0:
        raise InvalidOptionError(f"token_prepending_layers must be non-negative layer indices, got {value!r}")
    return tuple(sorted(set(layers)))


def resolve_options(
    explicit: dict[str, Any],
    choice: PresetChoice | None,
    info: CheckpointInfo | None,
) -> ResolvedOptions:
    """Apply the precedence to every option; an explicit value that contradicts the preset is logged once.

    Raises:
        InvalidOptionError: for an option name the encoder does not have.
    """
    unknown = set(explicit) - set(HARNESS_DEFAULTS)
    if unknown:
        raise InvalidOptionError(f"unknown encoder option(s) {sorted(unknown)}; valid: {sorted(HARNESS_DEFAULTS)}")
    explicit = _parsed(explicit)
    preset_options = _parsed(choice.preset.options) if choice else {}
    declared = info.declared_options() if info else {}
    resolved: dict[str, ResolvedOption] = {}
    for key, default in HARNESS_DEFAULTS.items():
        if key in explicit:
            resolved[key] = ResolvedOption(explicit[key], EXPLICIT)
            contradicts = preset_options.get(key) is not None and _plain(preset_options[key]) != _plain(explicit[key])
            if contradicts and key not in BATCHING_OPTIONS:
                logger.warning(
                    "explicit %s=%r overrides %s's %r", key, explicit[key], choice.label, preset_options[key]
                )
        elif key in preset_options:
            resolved[key] = ResolvedOption(preset_options[key], choice.label)
        elif key in declared:
            resolved[key] = ResolvedOption(declared[key].value, f"checkpoint: {declared[key].where}")
        else:
            resolved[key] = ResolvedOption(default, DEFAULT)
    if choice and resolved["trust_remote_code"].value:
        for key in choice.preset.checkpoint_code_does:
            if key not in explicit:
                resolved[key] = ResolvedOption(_LEFT_TO_CHECKPOINT_CODE[key], CHECKPOINT_CODE)
    return ResolvedOptions(resolved, choice)


def _parsed(options: dict[str, Any]) -> dict[str, Any]:
    """Options in comparable form (a layer spec like '1-7' becomes (1, ..., 7))."""
    if options.get("token_prepending_layers") is None:
        return options
    return {**options, "token_prepending_layers": parse_layers(options["token_prepending_layers"])}


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


@dataclass(frozen=True)
class Batching:
    """How the encoder cuts a call's texts into forward passes (never part of an embedding's identity).

    ``max_tokens`` > 0: longest first, each batch holds at most ``max_tokens`` padded tokens and
    ``max_rows`` texts. ``max_tokens`` == 0: the reference's batching, ``max_rows`` texts per batch in
    descending character length. In float32 both give the same embeddings up to rounding noise; in
    bf16 the last bits may differ, so the reference batching is the one to use for bit-level parity.
    """

    max_rows: int
    max_tokens: int

    @property
    def reference(self) -> bool:
        return self.max_tokens == 0


def resolve_batching(resolved: ResolvedOptions, device_type: str) -> Batching:
    """The one owner of batching defaults: the row cap follows the mode, the budget the device and max_length.

    A default budget smaller than ``max_length`` grows to it; an explicit one is refused by :func:`check_values`.
    """
    budget = resolved["max_tokens_per_batch"]
    rows = resolved["batch_size"]
    if budget == 0:
        reference = resolved.preset.preset.reference_batch_size if resolved.preset else None
        return Batching(rows or reference or DEFAULT_BATCH_SIZE, 0)
    if budget is None:
        budget = max(DEFAULT_MAX_TOKENS_PER_BATCH["cuda" if device_type == "cuda" else "cpu"], resolved["max_length"])
    return Batching(rows or DEFAULT_MAX_ROWS_PER_BATCH, budget)


def with_batching(resolved: ResolvedOptions, batching: Batching, used_for: str) -> ResolvedOptions:
    """``resolved`` with the batching actually used in place of unset values, so a log and a manifest say
    ``max_tokens_per_batch = 4096 (default for cpu)`` rather than ``None (default)``."""
    options = dict(resolved.options)
    for key, value in (("batch_size", batching.max_rows), ("max_tokens_per_batch", batching.max_tokens)):
        if options[key].value is None:
            options[key] = ResolvedOption(value, f"default for {used_for}")
    return ResolvedOptions(options, resolved.preset)


def check_values(resolved: ResolvedOptions) -> None:
    """Reject values no encoder can take, before any data or weights load (build_encoder relies on it).

    Raises:
        InvalidOptionError: naming the option, the value and what it may be.
    """
    from qzhou_eval.constants import TOKEN_PREPENDING_PLACEHOLDER
    from qzhou_eval.encoder.inputs import check_template
    from qzhou_eval.integrity.numbers import NON_NEGATIVE_INT, POSITIVE_INT, check_number
    from qzhou_eval.modeling.pooling_mode import Pooling

    Pooling.from_str(resolved["pooling"])
    canonical_dtype_name(resolved["dtype"])
    template = check_template(resolved["prompt_template"])
    check_number("batch_size", resolved["batch_size"], POSITIVE_INT, none_ok=True)
    check_number("max_length", resolved["max_length"], POSITIVE_INT)
    budget = check_number(
        "max_tokens_per_batch (0 = the reference's fixed batches of batch_size texts)",
        resolved["max_tokens_per_batch"],
        NON_NEGATIVE_INT,
        none_ok=True,
    )
    if budget is not None and 0 < budget < resolved["max_length"]:
        raise InvalidOptionError(
            f"max_tokens_per_batch={budget} is smaller than the longest allowed input, max_length="
            f"{resolved['max_length']} tokens; raise the budget to at least {resolved['max_length']}, lower "
            "max_length, or pass max_tokens_per_batch=0 for fixed batches of batch_size texts"
        )
    check_number("dim", resolved["dim"], POSITIVE_INT, none_ok=True)
    for key in ("normalize", "lowercase", "token_prepending", "trust_remote_code"):
        if not isinstance(resolved[key], bool):
            raise InvalidOptionError(f"{key} must be True or False, got {resolved[key]!r}")
    bidi = resolved["bidirectional"]
    if bidi not in (None, True, False):
        raise InvalidOptionError(f"bidirectional must be True, False or None, got {bidi!r}")
    if resolved["token_prepending"]:
        if template is None or TOKEN_PREPENDING_PLACEHOLDER not in template:
            raise InvalidOptionError(
                f"token_prepending=True needs a prompt_template that contains the placeholder "
                f"{TOKEN_PREPENDING_PLACEHOLDER!r} (e.g. qzhou_eval.constants.PROMPTEOL_TEMPLATE)"
            )
        if bidi:
            raise InvalidOptionError(
                "token_prepending is meant for causal attention; do not combine it with bidirectional=True"
            )
