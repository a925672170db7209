"""``load_encoder``: one call from a checkpoint (and optional preset) to a ready Encoder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from qzhou_eval.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    TOKEN_PREPENDING_LAYERS,
    TOKEN_PREPENDING_PLACEHOLDER,
)
from qzhou_eval.encoder.embedder import Encoder, EncoderOptions
from qzhou_eval.encoder.inputs import check_template
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.bidirectional import enable_bidirectional_attention
from qzhou_eval.modeling.loading import load_model, resolve_device, resolve_dtype
from qzhou_eval.modeling.mrl import check_dim
from qzhou_eval.modeling.pooling import Pooling
from qzhou_eval.modeling.source import resolve_source
from qzhou_eval.modeling.st_layout import read_layout
from qzhou_eval.modeling.token_prepend import TokenPrepending, placeholder_token_id
from qzhou_eval.presets import load_preset

logger = logging.getLogger(__name__)


class _Default:
    """Marks a keyword left at its default, so presets and checkpoint configs can fill it.

    Its repr is the plain value, so ``help(load_encoder)`` reads ``pooling='mean'``.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _pick(explicit: Any, preset: dict[str, Any], key: str, fallback: Any = None) -> Any:
    """Explicit keyword > preset > fallback (e.g. the checkpoint's own config) > the default."""
    if not isinstance(explicit, _Default):
        return explicit
    if key in preset:
        return preset[key]
    if fallback is not None:
        return fallback
    return explicit.value


def load_encoder(
    model_name_or_path: str | os.PathLike | None,
    *,
    pooling: str | Pooling = _Default("mean"),
    normalize: bool = _Default(True),
    dim: int | None = _Default(None),
    max_length: int = _Default(DEFAULT_MAX_LENGTH),
    bidirectional: bool | None = _Default(None),
    prompt_template: str | None = _Default(None),
    token_prepending: bool = _Default(False),
    dtype: str | torch.dtype | None = _Default(None),
    device: str | torch.device | None = None,
    batch_size: int = _Default(DEFAULT_BATCH_SIZE),
    preset: str | None = None,
    trust_remote_code: bool = _Default(False),
    mrl_dims: Sequence[int] | None = _Default(None),
    revision: str | None = None,
) -> Encoder:
    """Load a checkpoint and return an :class:`Encoder` that follows the QZhou protocol.

    Args:
        model_name_or_path: local transformers / sentence-transformers folder or hub id; ``None``
            takes the preset's published model.
        pooling: ``mean``, ``last`` or ``cls``; left at its default, a sentence-transformers
            folder's Pooling config decides.
        normalize: L2-normalise the output.
        dim: MRL truncation (first ``dim`` values, then normalise).
        max_length: truncation length in tokens (capped by a learned position table's size).
        bidirectional: ``True`` runs a Qwen2/Qwen3 decoder with full attention; ``None`` keeps it.
        prompt_template: a string with one ``{text}`` slot wrapped around prefix + text.
        token_prepending: Token Prepending on decoder layers 1-7 (needs the placeholder in the template).
        dtype: ``None`` = bfloat16 on CUDA, float32 on CPU.
        device: ``None`` = CUDA when present.
        batch_size: texts per forward pass; results do not depend on it.
        preset: ``qzhou-embedding`` or ``qzhou-embedding-zh``; explicit keywords override it.
        trust_remote_code: allow the checkpoint's own model code.
        mrl_dims: the dimensions ``dim`` may take (else those the checkpoint declares, else 1..width).
        revision: hub revision to load.

    Returns:
        A ready :class:`Encoder` in eval mode.

    Raises:
        ModelNotFoundError: the path is neither a local folder nor a fetchable hub id.
        InvalidOptionError: an unknown pooling, preset or dtype, a bad dim, a template without slot.

    Example:
        >>> enc = load_encoder("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> enc.encode(["a sentence"]).shape  # doctest: +SKIP
        (1, 384)
    """
    preset_options: dict[str, Any] = {}
    if preset is not None:
        chosen = load_preset(preset)
        preset_options = chosen.options
        if model_name_or_path is None:
            model_name_or_path = chosen.model
    if model_name_or_path is None:
        raise InvalidOptionError("model_name_or_path is required unless a preset names the model")

    source = resolve_source(model_name_or_path, revision)
    layout = read_layout(source)
    pooling_mode = Pooling.from_str(_pick(pooling, preset_options, "pooling", layout.pooling if layout else None))
    template = check_template(_pick(prompt_template, preset_options, "prompt_template"))
    use_tp = bool(_pick(token_prepending, preset_options, "token_prepending"))
    bidi = _pick(bidirectional, preset_options, "bidirectional", layout.bidirectional if layout else None)
    if bidi not in (None, True, False):
        raise InvalidOptionError(f"bidirectional must be True, False or None, got {bidi!r}")
    if use_tp and (template is None or TOKEN_PREPENDING_PLACEHOLDER not in template):
        raise InvalidOptionError(
            f"token_prepending=True needs a prompt_template that contains the placeholder "
            f"{TOKEN_PREPENDING_PLACEHOLDER!r} (e.g. qzhou_eval.constants.PROMPTEOL_TEMPLATE)"
        )
    if use_tp and bidi:
        raise InvalidOptionError("token_prepending is meant for causal attention; do not combine it with bidirectional=True")
    size = int(_pick(batch_size, preset_options, "batch_size"))
    if size <= 0:
        raise InvalidOptionError(f"batch_size must be positive, got {size}")
    length = int(_pick(max_length, preset_options, "max_length"))
    if length <= 0:
        raise InvalidOptionError(f"max_length must be positive, got {length}")

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(_pick(dtype, preset_options, "dtype"), torch_device)
    remote = bool(_pick(trust_remote_code, preset_options, "trust_remote_code"))
    loaded = load_model(source, layout, dtype=torch_dtype, device=torch_device, trust_remote_code=remote)

    declared = _pick(mrl_dims, preset_options, "mrl_dims", layout.matryoshka_dims if layout else None)
    out_dim = check_dim(_pick(dim, preset_options, "dim"), loaded.width, declared)
    if loaded.absolute_positions and loaded.max_positions and length > loaded.max_positions:
        logger.info("max_length %d capped at the model's %d learned positions", length, loaded.max_positions)
        length = int(loaded.max_positions)
    if bidi:
        enable_bidirectional_attention(loaded.model)
    hooks = None
    if use_tp:
        hooks = TokenPrepending(
            loaded.model,
            placeholder_token_id(loaded.tokenizer, TOKEN_PREPENDING_PLACEHOLDER),
            TOKEN_PREPENDING_LAYERS,
        )
    options = EncoderOptions(
        pooling=pooling_mode,
        normalize=bool(_pick(normalize, preset_options, "normalize")),
        dim=out_dim,
        max_length=length,
        bidirectional=bidi,
        prompt_template=template,
        token_prepending=use_tp,
        batch_size=size,
        dtype=str(torch_dtype).removeprefix("torch."),
        device=str(torch_device),
    )
    logger.info("loaded %s (%s, %s, attention=%s)", source.name_or_path, options.dtype, options.device,
                loaded.attn_implementation)
    return Encoder(loaded, options, source, hooks)
