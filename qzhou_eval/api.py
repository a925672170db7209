"""``load_encoder``: one call from a checkpoint (and optional preset) to a ready Encoder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import torch

from qzhou_eval.encoder import endpoint_backend, hf_pass, vllm_backend
from qzhou_eval.encoder.embedder import Encoder
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.modeling.pooling import Pooling  # noqa: F401  (load_encoder's annotation)
from qzhou_eval.option_table import HARNESS_DEFAULTS, OPTIONS_BY_NAME
from qzhou_eval.presets import Preset, PresetChoice
from qzhou_eval.remote.endpoint import EndpointSettings
from qzhou_eval.resolution.backends import Backend
from qzhou_eval.resolution.resolve import Request, resolve
from qzhou_eval.resolution.spec import RunSpec

logger = logging.getLogger(__name__)


class _Default:
    """Marks a keyword left at its default, so presets and checkpoint configs can fill it.

    Its repr is the plain value, so ``help(load_encoder)`` reads ``pooling='mean'``.
    """

    def __init__(self, key: str) -> None:
        self.value = HARNESS_DEFAULTS[key]

    def __repr__(self) -> str:
        return repr(self.value)


def load_encoder(
    model_name_or_path: str | os.PathLike | None,
    *,
    pooling: str | Pooling = _Default("pooling"),
    normalize: bool = _Default("normalize"),
    dim: int | None = _Default("dim"),
    max_length: int = _Default("max_length"),
    bidirectional: bool | None = _Default("bidirectional"),
    prompt_template: str | None = _Default("prompt_template"),
    token_prepending: bool = _Default("token_prepending"),
    token_prepending_layers: Sequence[int] | str = _Default("token_prepending_layers"),
    lowercase: bool = _Default("lowercase"),
    dtype: str | torch.dtype | None = _Default("dtype"),
    device: str | torch.device | None = None,
    batch_size: int | None = _Default("batch_size"),
    max_tokens_per_batch: int = _Default("max_tokens_per_batch"),
    batching: str = _Default("batching"),
    reference_gpus: int = _Default("reference_gpus"),
    pad_to_multiple_of: int | None = _Default("pad_to_multiple_of"),
    preset: str | Preset | PresetChoice | None = None,
    trust_remote_code: bool = _Default("trust_remote_code"),
    mrl_dims: Sequence[int] | None = _Default("mrl_dims"),
    revision: str | None = None,
    backend: str = "hf",
    endpoint: EndpointSettings | None = None,
) -> Encoder:
    """Load a checkpoint and return an :class:`Encoder` that follows the QZhou protocol.

    Every option left unset takes, in order, the preset's value, the checkpoint's own declaration
    (sentence-transformers ``max_seq_length``, ``do_lower_case``, Pooling, Normalize, Dense/MRL dims),
    then the harness default; ``encoder.resolution`` records each value and its source.

    Args:
        model_name_or_path: local transformers / sentence-transformers folder or hub id; ``None``
            takes the preset's published model.
        pooling: ``mean``, ``last`` or ``cls``.
        normalize: L2-normalise the output.
        dim: MRL truncation (first ``dim`` values, then normalise).
        max_length: truncation length in tokens (capped by a learned position table's size).
        bidirectional: ``True`` runs a Qwen2/Qwen3 decoder with full attention; ``None`` keeps it.
        prompt_template: a string with one ``{text}`` slot wrapped around prefix + text.
        token_prepending: Token Prepending (needs the placeholder in the template).
        token_prepending_layers: decoder layers whose input gets the summary, 0-based, inclusive
            (a list, or ``"1-7"``); default 1..7 as the QZhou-Embedding-Zh model card says.
        lowercase: lowercase every input (sentence-transformers' ``do_lower_case``).
        dtype: ``None`` = bfloat16 on CUDA, float32 on CPU.
        device: ``None`` = CUDA when present.
        batch_size: at most this many texts per forward pass (default 1024 under a token budget; with
            ``max_tokens_per_batch=0``, the preset's reference batch size, else 32).
        max_tokens_per_batch: fill batches longest first up to this many padded tokens (default 16384 on
            CUDA, 4096 on CPU, raised to ``max_length`` if smaller); 0 = the reference's fixed batches of ``batch_size``
            distinct texts in descending character length. In float32 the embeddings do not depend on it
            beyond rounding noise; in bf16 the last bits may.
        batching: ``"budget"`` (each distinct text once, token-budget batches: fastest) or ``"reference"``:
            the reference embedders' own batches (every row, no dedupe, ``np.argsort`` of character lengths,
            32 rows, the Zh reference's blocks of 128) and normalisation, bit for bit in bf16 (hf backend).
        reference_gpus: with ``batching="reference"``, the GPU count of the run to match: the reference
            splits each call into that many contiguous shards before batching.
        pad_to_multiple_of: pad each batch to a multiple of this many tokens (8 or 64 suit GPU kernels); the
            token budget counts the padded size. ``None`` pads to the batch's longest text.
        preset: a preset name, ``"none"`` (no preset, no recognition), or ``None``: the preset of a
            published checkpoint recognised from its files or hub id (logged), else none.
        trust_remote_code: run the checkpoint's own model code.
        mrl_dims: the dimensions ``dim`` may take (else those the checkpoint declares, else 1..width).
        revision: hub revision to load.
        backend: ``"hf"`` runs transformers in this process; ``"vllm"`` runs vLLM's engine (same inputs,
            cache and head; no Token Prepending); ``"openai"`` sends the formatted texts to the server(s) in
            ``endpoint``. With ``"openai"``, ``model_name_or_path`` may be a local folder (its tokenizer,
            width and options are used, and the server is checked against it) or just the model's name.
        endpoint: where the server is and how to talk to it (``backend="openai"`` only).

    Returns:
        A ready :class:`Encoder` in eval mode.

    Raises:
        ModelNotFoundError: the path is neither a local folder nor a fetchable hub id.
        InvalidOptionError: an unknown pooling, preset or dtype, a bad dim, a template without slot,
            or custom model code that no option says whether to run.

    Example:
        >>> enc = load_encoder("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> enc.resolution.source("max_length")  # doctest: +SKIP
        'checkpoint: sentence_bert_config.json max_seq_length'
    """
    given = locals()
    passed = {name: given[name] for name in OPTIONS_BY_NAME}  # every row of the option table is a keyword
    explicit = {k: _plain_option(v) for k, v in passed.items() if not isinstance(v, _Default)}
    request = Request(
        None if model_name_or_path is None else os.fspath(model_name_or_path),
        options=explicit,
        preset=preset,
        backend=backend,
        endpoint=endpoint,
        device=None if device is None else str(device),
        load_revision=revision,
        ranks=1,
    )
    return build_encoder(resolve(request))


def _plain_option(value):
    """A torch dtype keyword as its name (the spec is torch-free)."""
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else value


def build_encoder(spec: RunSpec, device: str | None = None) -> Encoder:
    """Load the weights (transformers or vLLM's engine) or reach the server that ``spec`` names, and assemble
    the :class:`Encoder`. Every check ran in :func:`~qzhou_eval.resolution.resolve.resolve`.

    ``device``: where this process runs an in-process model (a torchrun rank's GPU); default the spec's.
    """
    choice = spec.choice
    if spec.info is not None and choice is not None and choice.how != "requested":
        logger.info(
            "%s is %s (%s); applying its published settings (--preset none turns this off)",
            spec.source.name_or_path,
            choice.preset.model,
            choice.how,
        )
    if spec.info is not None:
        _explain_custom_code(spec.info, spec)
    if device is not None and spec.backend.in_process:
        spec = replace(spec, device=device)
    built = _BUILDERS[spec.backend.backend](spec)
    return Encoder(built.loaded, spec, spec.source, built.backend, placement=built.placement)


# One factory per backend, each in its backend's module; a served model is checked against a local hf encoder.
_BUILDERS = {
    Backend.HF: hf_pass.build,
    Backend.VLLM: vllm_backend.build,
    Backend.OPENAI: partial(endpoint_backend.build, build_local=build_encoder),
}


def _explain_custom_code(info: CheckpointInfo, spec: RunSpec) -> None:
    """Say what happens to a checkpoint's custom model code (resolution refused the undecided case)."""
    code = info.remote_code
    if not code:
        return
    if spec.trust_remote_code:
        logger.info("running the checkpoint's own model code %s (trust_remote_code=True)", code)
        return
    stock = f"transformers' stock class for model_type {info.model_type!r}"
    if spec.choice is not None:
        logger.info(
            "%s ships custom model code (%s), which qzhou-eval does not run: the weights load into %s and "
            "%s reproduces it in memory (%s); --trust_remote_code true runs the checkpoint's code instead",
            info.source.name_or_path,
            code,
            stock,
            spec.choice.label,
            ", ".join(spec.choice.preset.checkpoint_code_does) or "no changes needed",
        )
        return
    logger.warning("custom model code %s not run (trust_remote_code=False): the weights load into %s", code, stock)
