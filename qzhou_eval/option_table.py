"""Every encoder option, one row each: the single table the rest of the package derives from.

The harness defaults, the keys a preset may set, the checks ``RunConfig`` and the encoder builders run,
what a result's identity holds, ``load_encoder``'s keywords and the ``run`` command's flags all come from
:data:`ENCODER_OPTIONS` (tests assert that the keywords and the flags cover it). Adding an option is one
row here plus the code that uses its value. Torch-free, and below ``options``/``presets``/``encoder``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qzhou_eval.constants import DEFAULT_MAX_LENGTH, TEMPLATE_TEXT_SLOT, TOKEN_PREPENDING_LAYERS
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import NON_NEGATIVE_INT, POSITIVE_INT, check_number
from qzhou_eval.modeling.dtype_names import canonical_dtype_name
from qzhou_eval.modeling.pooling_mode import Pooling

# How a call's texts become forward passes (see encoder/reference_batches.py and encoder/batching.py).
BUDGET, REFERENCE = "budget", "reference"
BATCHING_POLICIES = (BUDGET, REFERENCE)


def check_template(template: str | None) -> str | None:
    """A prompt template must hold exactly one ``{text}`` slot."""
    if template is None:
        return None
    if not isinstance(template, str) or template.count(TEMPLATE_TEXT_SLOT) != 1:
        raise InvalidOptionError(
            f"prompt_template must be a string with exactly one {TEMPLATE_TEXT_SLOT} slot, got {template!r}"
        )
    return template


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


def parse_dims(value: Sequence[int] | str) -> tuple[int, ...]:
    """MRL dimensions from a list or ``"128,256,512"``.

    Raises:
        InvalidOptionError: anything but a non-empty list of positive integers.
    """
    try:
        dims = [int(v) for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"mrl_dims must be positive integers like '128,256,512', got {value!r}") from None
    if not dims:
        raise InvalidOptionError(f"mrl_dims must name at least one dimension, got {value!r}")
    return tuple(check_number("mrl_dims", d, POSITIVE_INT) for d in dims)


class Kind(Enum):
    """What values an option takes; the CLI maps each kind to its argparse type (cli/run_cmd.py)."""

    BOOL = "true|false"
    MAYBE_BOOL = "true|false, unset keeps the model's own"
    POSITIVE_INT = "a positive integer"
    NON_NEGATIVE_INT = "a non-negative integer"
    TEXT = "text"
    CHOICE = "one of the listed names"
    LAYERS = "layer indices like 1-7"
    DIMS = "dimensions like 128,256"


@dataclass(frozen=True)
class OptionSpec:
    """One encoder option: its value kind and check, default, and where it may come from and goes to.

    ``identity``: part of a result's and a cached embedding's identity (batching is not: in float32 it
    changes only rounding noise). ``identity_from`` marks an option added after results existed: it joins
    the identity only when set away from its default, so records written before it still match.
    ``cache_identity_from`` does the same for the embedding cache's key alone (an option the record held
    before the cache key did: cached vectors of its default value still serve).
    ``preset``: a published preset may set it. ``quiet``: an explicit value overrides a preset without a
    warning. ``flag``: the ``run`` command's flag (the reference scripts' spelling where they have one).
    """

    name: str
    default: Any
    kind: Kind
    help: str
    flag: str
    identity: bool = True
    identity_from: bool = False
    cache_identity_from: bool = False
    preset: bool = True
    quiet: bool = False
    choices: tuple[str, ...] = ()
    check_value: Callable[[Any], Any] | None = None

    def parsed(self, value: Any) -> Any:
        """The value in comparable form: a layer spec ``"1-7"`` or dims ``"128,256"`` becomes a tuple."""
        if value is None or self.kind not in (Kind.LAYERS, Kind.DIMS):
            return value
        return self.check_value(value)

    def check(self, value: Any) -> None:
        """Raises InvalidOptionError naming the option when ``value`` is not of its kind."""
        if value is None and self.default is None:  # unset: a preset, the checkpoint or the device decides
            return
        if self.check_value is not None:
            self.check_value(value)
        elif self.kind in (Kind.BOOL, Kind.MAYBE_BOOL):
            if not isinstance(value, bool):
                allowed = "True, False or None" if self.kind is Kind.MAYBE_BOOL else "True or False"
                raise InvalidOptionError(f"{self.name} must be {allowed}, got {value!r}")
        elif self.kind is Kind.POSITIVE_INT:
            check_number(self.name, value, POSITIVE_INT)
        elif self.kind is Kind.NON_NEGATIVE_INT:
            check_number(self.name, value, NON_NEGATIVE_INT)
        elif self.kind is Kind.CHOICE and value not in self.choices:
            raise InvalidOptionError.for_choice(self.name, value, self.choices)


ENCODER_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "pooling", "mean", Kind.CHOICE, "mean | last | cls (reference default: mean)", "--pooling_mode",
        check_value=Pooling.from_str,
    ),
    OptionSpec("normalize", True, Kind.BOOL, "true|false: L2-normalise the output (default true)", "--normalize"),
    OptionSpec("dim", None, Kind.POSITIVE_INT, "MRL dimension: keep the first dim values, then normalise", "--dim"),
    OptionSpec(
        "mrl_dims", None, Kind.DIMS, "dimensions --dim may take, e.g. 128,256,512 (default: the checkpoint's)",
        "--mrl_dims", identity=False, check_value=parse_dims,
    ),
    OptionSpec(
        "max_length", DEFAULT_MAX_LENGTH, Kind.POSITIVE_INT,
        "truncation length in tokens (default: the preset's, the checkpoint's max_seq_length, else 1024; "
        "never above the model's position table)", "--max_length",
    ),
    OptionSpec("lowercase", False, Kind.BOOL, "true|false: lowercase inputs (default: the checkpoint's "
               "do_lower_case)", "--lowercase"),
    OptionSpec("bidirectional", None, Kind.MAYBE_BOOL, "true|false: bidirectional Qwen attention", "--bidirectional"),
    OptionSpec(
        "prompt_template", None, Kind.TEXT, "template with one {text} slot (e.g. PromptEOL)", "--prompt_template",
        check_value=check_template,
    ),
    OptionSpec("token_prepending", False, Kind.BOOL, "true|false: Token Prepending", "--token_prepending"),
    OptionSpec(
        "token_prepending_layers", TOKEN_PREPENDING_LAYERS, Kind.LAYERS,
        "0-based decoder layers, inclusive, e.g. 1-7 (the model card's) or 1,2,3", "--token_prepending_layers",
        check_value=parse_layers,
    ),
    OptionSpec(
        "dtype", None, Kind.TEXT, "bfloat16 | float16 | float32 (default: bf16 on CUDA, fp32 on CPU)", "--dtype",
        check_value=canonical_dtype_name,
    ),
    OptionSpec(
        "batching", BUDGET, Kind.CHOICE,
        "budget: each distinct text once, in batches filled up to a token budget (fastest; the default); "
        "reference: the reference embedders' own batches, bit for bit in bf16 (every row, no dedupe, "
        "character-length order, 32 rows a batch)", "--batching",
        choices=BATCHING_POLICIES, preset=False, identity_from=True,
    ),
    OptionSpec(
        "reference_gpus", 1, Kind.POSITIVE_INT,
        "with --batching reference: the GPU count of the run to match (the reference splits each call "
        "across its GPUs, and a row's bf16 result depends on its batch)", "--reference_gpus",
        preset=False, identity_from=True,
    ),
    OptionSpec(
        "batch_size", None, Kind.POSITIVE_INT,
        "most texts per forward pass (default 1024 under the token budget; 32 with --max_tokens_per_batch 0 "
        "or --batching reference)", "--batch_size", identity=False, quiet=True,
    ),
    OptionSpec(
        "max_tokens_per_batch", None, Kind.NON_NEGATIVE_INT,
        "fill batches longest first up to this many padded tokens (default 16384 on CUDA, 4096 on CPU); "
        "0 = fixed batches of --batch_size distinct texts", "--max_tokens_per_batch", identity=False, quiet=True,
    ),
    OptionSpec(
        "pad_to_multiple_of", None, Kind.POSITIVE_INT,
        "pad each batch to a multiple of N tokens (8 or 64 suit GPU kernels; default: its longest text's length)",
        "--pad_to_multiple_of", identity=False, quiet=True, preset=False,
    ),
    OptionSpec("trust_remote_code", False, Kind.BOOL, "true|false: run the checkpoint's own model code",
               "--trust_remote_code", cache_identity_from=True),
)  # fmt: skip

OPTIONS_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in ENCODER_OPTIONS}
HARNESS_DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in ENCODER_OPTIONS}
PRESET_OPTION_KEYS = frozenset(spec.name for spec in ENCODER_OPTIONS if spec.preset)
QUIET_OVERRIDES = frozenset(spec.name for spec in ENCODER_OPTIONS if spec.quiet)


def check_option_names(names: Sequence[str] | set[str], where: str) -> None:
    """Raises InvalidOptionError for a name that is no encoder option, listing the valid ones."""
    unknown = sorted(set(names) - set(OPTIONS_BY_NAME))
    if unknown:
        raise InvalidOptionError(f"{where} has unknown option(s) {unknown}; valid: {sorted(OPTIONS_BY_NAME)}")


def check_options(values: dict[str, Any], where: str | None = None) -> None:
    """Each value checked by its own row (cross-option rules live in :func:`qzhou_eval.options.check_values`);
    ``where`` (e.g. ``RunConfig.encoder_options``) names the container in the message."""
    check_option_names(values, where or "the encoder options")
    for name, value in values.items():
        try:
            OPTIONS_BY_NAME[name].check(value)
        except InvalidOptionError as exc:
            if where is None:
                raise
            raise InvalidOptionError(f"{where}[{name!r}]: {exc}") from None


def identity_record(values: dict[str, Any]) -> dict[str, Any]:
    """The values a result's identity holds: identity options, those added later only when not at default."""
    out = {}
    for name, value in values.items():
        spec = OPTIONS_BY_NAME.get(name)
        if spec is None or not spec.identity:
            continue
        if spec.identity_from and value == spec.default:
            continue
        out[name] = value
    return out


def cache_identity_record(identity: dict[str, Any]) -> dict[str, Any]:
    """A result identity (:func:`identity_record`'s) as the embedding cache keys it: an option that joined the
    cache key later is left out at its default, so vectors cached before it still serve."""
    out = dict(identity)
    for name, value in identity.items():
        spec = OPTIONS_BY_NAME.get(name)
        if spec is not None and spec.cache_identity_from and value == spec.default:
            del out[name]
    return out


def markdown_table() -> str:
    """docs/options.md's table: every option's flag, keyword, default and where it may come from."""
    rows = [
        "| flag | `load_encoder` keyword | default | a preset may set it | part of a result's identity | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for spec in ENCODER_OPTIONS:
        identity = "yes" if spec.identity and not spec.identity_from else "when not default" if spec.identity else "no"
        default = "unset" if spec.default is None else f"`{spec.default}`"
        help_text = spec.help.replace("|", "\\|")
        rows.append(
            f"| `{spec.flag}` | `{spec.name}` | {default} | {'yes' if spec.preset else 'no'} | {identity} | {help_text} |"
        )
    return "\n".join(rows) + "\n"
