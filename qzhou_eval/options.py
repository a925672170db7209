"""Encoder options and where each value comes from: explicit > preset > checkpoint > harness default.

The one owner of that precedence. Every resolved value keeps its source, so a run can print and
record why it used, say, ``max_length=256`` (the checkpoint's ``sentence_bert_config.json``) rather
than the harness's 1024. Torch-free: the runner resolves before it loads anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qzhou_eval.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_ROWS_PER_BATCH,
    DEFAULT_MAX_TOKENS_PER_BATCH,
    TOKEN_PREPENDING_PLACEHOLDER,
)
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.option_table import (
    BUDGET,
    HARNESS_DEFAULTS,
    OPTIONS_BY_NAME,
    QUIET_OVERRIDES,
    REFERENCE,
    check_option_names,
    check_options,
)
from qzhou_eval.presets import PresetChoice

logger = logging.getLogger(__name__)

# What an option becomes when the checkpoint's own code (trust_remote_code) already performs it.
_LEFT_TO_CHECKPOINT_CODE = {"bidirectional": None, "token_prepending": False}

EXPLICIT, DEFAULT = "explicit", "default"

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


def resolve_options(
    explicit: dict[str, Any],
    choice: PresetChoice | None,
    info: CheckpointInfo | None,
) -> ResolvedOptions:
    """Apply the precedence to every option; an explicit value that contradicts the preset is logged once.

    Raises:
        InvalidOptionError: for an option name the encoder does not have.
    """
    check_option_names(explicit, "the encoder options")
    explicit = _parsed(explicit)
    preset_options = _parsed(choice.preset.options) if choice else {}
    declared = info.declared_options() if info else {}
    resolved: dict[str, ResolvedOption] = {}
    for key, default in HARNESS_DEFAULTS.items():
        if key in explicit:
            resolved[key] = ResolvedOption(explicit[key], EXPLICIT)
            contradicts = preset_options.get(key) is not None and _plain(preset_options[key]) != _plain(explicit[key])
            if contradicts and key not in QUIET_OVERRIDES:
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
    if info is not None:
        resolved["max_length"] = capped_max_length(resolved["max_length"], info.max_positions, info.config_file)
    return ResolvedOptions(resolved, choice)


def capped_max_length(asked: ResolvedOption, limit: int | None, limit_name: str) -> ResolvedOption:
    """The one rule for the truncation length every backend, record and cache uses: never more tokens than
    the model (or server) has positions for; a cap keeps the asked value and its source in the new source."""
    if not limit or not isinstance(asked.value, int) or asked.value <= limit:
        return asked
    logger.info("max_length %d (%s) capped at %s = %d", asked.value, asked.source, limit_name, limit)
    return ResolvedOption(limit, f"{limit_name} (asked {asked.value}: {asked.source})")


def _parsed(options: dict[str, Any]) -> dict[str, Any]:
    """Options in comparable form (a layer spec like '1-7' becomes (1, ..., 7)); unknown keys pass through."""
    return {k: OPTIONS_BY_NAME[k].parsed(v) if k in OPTIONS_BY_NAME else v for k, v in options.items()}


def round_up(length: int, multiple: int | None) -> int:
    """``length`` padded up to a multiple of ``multiple`` (None or 1: unchanged)."""
    step = multiple or 1
    return -(-length // step) * step


@dataclass(frozen=True)
class Batching:
    """How the encoder cuts a call's texts into forward passes.

    Policy ``budget`` (the default): each distinct text once, longest first; ``max_tokens`` > 0 fills each
    batch up to that many padded tokens and ``max_rows`` texts, ``max_tokens`` == 0 cuts fixed batches of
    ``max_rows``. Policy ``reference``: the reference embedders' own batches (every row of the call, no
    dedupe, ``np.argsort`` of raw character lengths, ``max_rows`` a batch, first split over ``gpus`` and,
    for the Zh reference, into blocks of ``block`` rows). In float32 all give the same embeddings up to
    rounding noise; in bf16 a row's result depends on its batch, so only ``reference`` is bit-identical to
    the published runs. ``packed``: the backend packs sequences itself, so the limits only size its requests.
    """

    max_rows: int
    max_tokens: int
    policy: str = BUDGET
    gpus: int = 1
    block: int | None = None
    packed: bool = False  # the engine or server packs sequences (vLLM, served models): no padding
    pad_to_multiple_of: int | None = None  # each batch padded to a multiple of this many tokens

    @property
    def fixed_rows(self) -> bool:
        """Batches of ``max_rows`` texts, no token budget."""
        return self.max_tokens == 0

    @property
    def reference(self) -> bool:
        return self.policy == REFERENCE

    @property
    def kind(self) -> str:
        """How passes are cut, in a word: packed, reference, fixed or budget."""
        return "packed" if self.packed else REFERENCE if self.reference else "fixed" if self.fixed_rows else BUDGET

    def as_record(self) -> dict[str, Any]:
        """What the manifest says about the batching a run used."""
        if self.reference:
            return {"policy": REFERENCE, "rows": self.max_rows, "gpus": self.gpus, "block": self.block}
        record = {"policy": BUDGET, "max_rows": self.max_rows, "max_tokens": self.max_tokens or None}
        return record | ({"pad_to_multiple_of": self.pad_to_multiple_of} if self.pad_to_multiple_of else {})

    def padded_width(self, longest: int) -> int:
        """The padded length of a batch whose longest text has ``longest`` tokens."""
        return round_up(longest, self.pad_to_multiple_of)


def resolve_batching(resolved: ResolvedOptions, device_type: str, packed: bool = False) -> Batching:
    """The one owner of batching defaults: the row cap follows the mode, the budget the device and max_length.

    A default budget smaller than ``max_length`` grows to it; an explicit one is refused by :func:`check_values`.
    """
    budget = resolved["max_tokens_per_batch"]
    rows = resolved["batch_size"]
    if resolved["batching"] == REFERENCE:
        block = resolved.preset.preset.reference_block_size if resolved.preset else None
        return Batching(rows or DEFAULT_BATCH_SIZE, 0, REFERENCE, resolved["reference_gpus"], block)
    multiple = resolved["pad_to_multiple_of"]
    if budget == 0:
        return Batching(rows or DEFAULT_BATCH_SIZE, 0, packed=packed, pad_to_multiple_of=multiple)
    if budget is None:
        budget = max(DEFAULT_MAX_TOKENS_PER_BATCH["cuda" if device_type == "cuda" else "cpu"], resolved["max_length"])
        budget = round_up(budget, multiple)  # a default budget holds a padded max_length batch
    return Batching(rows or DEFAULT_MAX_ROWS_PER_BATCH, budget, packed=packed, pad_to_multiple_of=multiple)


def fit_to_server(resolved: ResolvedOptions, served: int | None) -> ResolvedOptions:
    """The protocol's truncation length, which a server must be able to take; an unset one is capped to it.

    Raises:
        InvalidOptionError: a max_length above the server's context (its inputs would be cut elsewhere).
    """
    asked = resolved.options["max_length"]
    if served is None or asked.value <= served:
        return resolved
    if asked.source != DEFAULT:
        raise InvalidOptionError(
            f"max_length={asked.value} ({asked.source}) exceeds the server's context of {served} tokens; start the "
            f"server with --max-model-len {asked.value} (vLLM) or --max-input-length {asked.value} (TEI), or pass "
            f"--max_length {served}"
        )
    capped = capped_max_length(asked, served, "the server's max_model_len")
    return ResolvedOptions({**resolved.options, "max_length": capped}, resolved.preset)


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

    Each value is checked by its row of the option table; the rules that join two options are here.

    Raises:
        InvalidOptionError: naming the option, the value and what it may be.
    """
    values = {key: resolved[key] for key in resolved.options}
    check_options(values)
    budget, length = resolved["max_tokens_per_batch"], resolved["max_length"]
    if budget is not None and 0 < budget < length:
        raise InvalidOptionError(
            f"max_tokens_per_batch={budget} is smaller than the longest allowed input, max_length={length} "
            f"tokens; raise the budget to at least {length}, lower max_length, or pass max_tokens_per_batch=0 "
            "for fixed batches of batch_size texts"
        )
    if resolved["batching"] == REFERENCE and budget:
        raise InvalidOptionError(
            f"max_tokens_per_batch={budget} was given with batching='reference', which forms the reference's "
            "own batches of rows; drop one of them"
        )
    if resolved["pad_to_multiple_of"] and resolved["batching"] == REFERENCE:
        raise InvalidOptionError(
            f"pad_to_multiple_of={resolved['pad_to_multiple_of']} was given with batching='reference', whose batches "
            "are padded to their longest text as the reference's are; drop one of them"
        )
    if resolved["reference_gpus"] != 1 and resolved["batching"] != REFERENCE:
        raise InvalidOptionError(
            f"reference_gpus={resolved['reference_gpus']} only shapes the reference's batches; pass it with "
            "--batching reference (batching='reference')"
        )
    if resolved["token_prepending"]:
        template = resolved["prompt_template"]
        if template is None or TOKEN_PREPENDING_PLACEHOLDER not in template:
            raise InvalidOptionError(
                f"token_prepending=True needs a prompt_template that contains the placeholder "
                f"{TOKEN_PREPENDING_PLACEHOLDER!r} (e.g. qzhou_eval.constants.PROMPTEOL_TEMPLATE)"
            )
        if resolved["bidirectional"]:
            raise InvalidOptionError(
                "token_prepending is meant for causal attention; do not combine it with bidirectional=True"
            )
