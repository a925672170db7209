"""``load_encoder``: one call from a checkpoint (and optional preset) to a ready Encoder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace

import torch

from qzhou_eval.constants import TOKEN_PREPENDING_PLACEHOLDER
from qzhou_eval.encoder.embedder import Encoder, EncoderOptions
from qzhou_eval.encoder.vllm_backend import check_vllm_options
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.bidirectional import enable_bidirectional_attention
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo, read_checkpoint
from qzhou_eval.modeling.loading import (
    LoadedModel,
    load_backbone,
    load_backbone_config,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from qzhou_eval.modeling.mrl import check_dim
from qzhou_eval.modeling.pooling import Pooling
from qzhou_eval.modeling.source import ModelSource, is_local_folder, resolve_source
from qzhou_eval.modeling.token_prepend import TokenPrepending, placeholder_token_id
from qzhou_eval.option_table import HARNESS_DEFAULTS, OPTIONS_BY_NAME, parse_layers
from qzhou_eval.options import (
    EXPLICIT,
    Batching,
    ResolvedOption,
    ResolvedOptions,
    check_backend,
    check_values,
    fit_to_server,
    resolve_batching,
    resolve_options,
    with_batching,
)
from qzhou_eval.presets import Preset, PresetChoice, load_preset, select_preset
from qzhou_eval.remote.endpoint import EndpointSettings

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
    explicit = {k: v for k, v in passed.items() if not isinstance(v, _Default)}
    if model_name_or_path is None and backend != "openai":
        if preset is None or str(preset).lower() == "none":
            raise InvalidOptionError("model_name_or_path is required unless a preset names the model")
        model_name_or_path = (
            preset.preset.model
            if isinstance(preset, PresetChoice)
            else (preset.model if isinstance(preset, Preset) else load_preset(str(preset)).model)
        )
    if check_backend(backend) == "openai" and not is_local_folder(model_name_or_path):
        name = os.fspath(model_name_or_path) if model_name_or_path is not None else None
        resolved = resolve_options(explicit, select_preset(preset, None, name), None)
        source = ModelSource(name, None, revision) if name else None
        return build_encoder(None, resolved, device, backend, endpoint, source)
    source = resolve_source(model_name_or_path, revision)
    info = read_checkpoint(source)
    source.check_weights(info.layout.transformer_subfolder if info.layout else "")
    resolved = resolve_options(explicit, select_preset(preset, info), info)
    return build_encoder(info, resolved, device, backend, endpoint)


def build_encoder(
    info: CheckpointInfo | None,
    resolved: ResolvedOptions,
    device: str | torch.device | None = None,
    backend: str = "hf",
    endpoint: EndpointSettings | None = None,
    source: ModelSource | None = None,
) -> Encoder:
    """Validate the resolved options, load the weights (HF or vLLM engine) or reach the server, and assemble
    the :class:`Encoder`. ``info`` may be None only for ``backend="openai"`` (then ``source`` names the model)."""
    check_values(resolved)
    if check_backend(backend) == "openai":
        if endpoint is None:
            raise InvalidOptionError("backend='openai' needs endpoint=EndpointSettings(base_urls=(...,))")
        return build_endpoint_encoder(info, resolved, endpoint, source or (info.source if info else None))
    if endpoint is not None:
        raise InvalidOptionError(f"endpoint settings were given with backend={backend!r}; use backend='openai'")
    if info is None:
        raise InvalidOptionError(f"backend={backend!r} needs a local checkpoint")
    if backend == "vllm":
        check_vllm_options(resolved, info, None if device is None else str(device))
        return _build_vllm_encoder(info, resolved)
    use_tp = bool(resolved["token_prepending"])
    layers = parse_layers(resolved["token_prepending_layers"])
    bidi = resolved["bidirectional"]
    remote = bool(resolved["trust_remote_code"])
    choice = resolved.preset
    if choice is not None and choice.how != "requested":
        logger.info(
            "%s is %s (%s); applying its published settings (--preset none turns this off)",
            info.source.name_or_path,
            choice.preset.model,
            choice.how,
        )
    _explain_custom_code(info, resolved)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(resolved["dtype"], torch_device)
    batching = resolve_batching(resolved, torch_device.type)
    loaded = load_backbone(info.source, info.layout, dtype=torch_dtype, device=torch_device, trust_remote_code=remote)

    out_dim = check_dim(resolved["dim"], loaded.width, resolved["mrl_dims"])
    if bidi:
        enable_bidirectional_attention(loaded.model)
    hooks = None
    if use_tp:
        hooks = TokenPrepending(
            loaded.model, placeholder_token_id(loaded.tokenizer, TOKEN_PREPENDING_PLACEHOLDER), layers
        )
    options = _encoder_options(
        resolved, out_dim, batching, str(torch_dtype).removeprefix("torch."), str(torch_device), layers
    )
    logger.info(
        "loaded %s (%s, %s, attention=%s)",
        info.source.name_or_path,
        options.dtype,
        options.device,
        loaded.attn_implementation,
    )
    resolution = with_batching(resolved, batching, torch_device.type)
    return Encoder(loaded, options, info.source, hooks, resolution=resolution)


def _encoder_options(
    resolved: ResolvedOptions,
    dim: int | None,
    batching: Batching,
    dtype: str,
    device: str,
    token_prepending_layers: tuple[int, ...] | None = None,
) -> EncoderOptions:
    """The encoder's options from the resolved ones and what loading decided (width check, dtype, batching)."""
    token_prepending = token_prepending_layers is not None and bool(resolved["token_prepending"])
    return EncoderOptions(
        pooling=Pooling.from_str(resolved["pooling"]),
        normalize=bool(resolved["normalize"]),
        dim=dim,
        max_length=int(resolved["max_length"]),
        bidirectional=resolved["bidirectional"],
        prompt_template=resolved["prompt_template"],
        token_prepending=token_prepending,
        token_prepending_layers=token_prepending_layers if token_prepending else None,
        lowercase=bool(resolved["lowercase"]),
        batch_size=batching.max_rows,
        max_tokens_per_batch=batching.max_tokens,
        batching=batching.policy,
        reference_gpus=batching.gpus,
        reference_block=batching.block,
        dtype=dtype,
        device=device,
    )


def _declared_shape(info: CheckpointInfo, remote: bool) -> tuple[object, int, int, int | None]:
    """The backbone config, hidden size, output width (after Dense heads) and position count, from small files."""
    config = load_backbone_config(info.source, info.layout, remote)
    hidden = int(getattr(config, "hidden_size", 0) or info.hidden_size or 0)
    layout = info.layout
    width = layout.dense_out_features[-1] if layout and layout.dense_out_features else hidden
    return config, hidden, width, getattr(config, "max_position_embeddings", None)


def _build_vllm_encoder(info: CheckpointInfo, resolved: ResolvedOptions) -> Encoder:
    """The vLLM engine plus the harness's tokenizer and head; options resolved exactly as for the HF backend."""
    from qzhou_eval._ranks import world_size
    from qzhou_eval.encoder.vllm_backend import VllmEngine

    _explain_custom_code(info, resolved)
    remote = bool(resolved["trust_remote_code"])
    torch_device = resolve_device(None)
    torch_dtype = resolve_dtype(resolved["dtype"], torch_device)
    source, layout = info.source, info.layout
    config, hidden, width, positions = _declared_shape(info, remote)
    out_dim = check_dim(resolved["dim"], width, resolved["mrl_dims"])
    length = int(resolved["max_length"])
    batching = resolve_batching(resolved, torch_device.type)
    engine = VllmEngine(
        str(source.local_path) if source.is_local else source.name_or_path,
        pooling=Pooling.from_str(resolved["pooling"]),
        bidirectional=resolved["bidirectional"],
        dtype=torch_dtype,
        max_length=length,
        max_tokens_per_batch=batching.max_tokens,
        max_rows=batching.max_rows,
        trust_remote_code=remote,
        revision=source.revision,
        projects=bool(layout and layout.dense_out_features),
        data_parallel_size=world_size(),
    )
    loaded = LoadedModel(
        model=None,
        tokenizer=load_tokenizer(source, layout, remote),
        width=width,
        hidden_size=hidden,
        max_positions=positions,
    )
    options = _encoder_options(resolved, out_dim, batching, str(torch_dtype).removeprefix("torch."), str(torch_device))
    logger.info("loaded %s in vLLM (%s, %s)", source.name_or_path, options.dtype, options.device)
    resolution = with_batching(resolved, batching, f"vLLM on {torch_device.type}")
    return Encoder(loaded, options, source, None, resolution=resolution, vllm=engine)


def build_endpoint_encoder(
    info: CheckpointInfo | None, resolved: ResolvedOptions, settings: EndpointSettings, source: ModelSource | None
) -> Encoder:
    """An encoder whose vectors come from an OpenAI-compatible server; ``info`` is the local checkpoint, if any.

    The server is asked what it serves and probed once (so a wrong URL, model or width fails now). With a
    local checkpoint its width and tokenizer are used and, unless ``settings.verify_texts`` is 0, the first
    texts are checked against it (:class:`~qzhou_eval.encoder.endpoint_backend.ServedModelCheck`).

    Raises:
        EndpointError: the server cannot be reached, serves another model, or answers with the wrong width.
        InvalidOptionError: a max_length the server cannot take, a bad dim, or a check without local weights.
    """
    from qzhou_eval.encoder.endpoint_backend import ServedModelCheck
    from qzhou_eval.remote.endpoint import EndpointClient

    verify = settings.verify_texts
    if verify is None:
        verify = settings.VERIFY_DEFAULT if info is not None else 0
    if verify and info is None:
        raise InvalidOptionError(
            "--verify_endpoint compares the server with local weights: pass the checkpoint folder as "
            "--model_name_or_path, or --verify_endpoint 0"
        )
    tokenizer, width, hidden = None, None, 0
    if info is not None:
        _explain_custom_code(info, resolved)
        remote = bool(resolved["trust_remote_code"])
        _, hidden, width, _ = _declared_shape(info, remote)
        tokenizer = load_tokenizer(info.source, info.layout, remote)
    client = EndpointClient(settings, expected_width=width)
    resolved = fit_to_server(resolved, client.served.max_model_len)
    client.truncate_to = int(resolved["max_length"]) if client.served.is_vllm else None
    client.embed(["Null"])  # a probe: the model answers under its name, at the expected width
    out_dim = check_dim(resolved["dim"], client.width, resolved["mrl_dims"])
    batching = resolve_batching(resolved, "cuda")  # a server's budget per request: the GPU default
    options = _encoder_options(resolved, out_dim, batching, "served", "endpoint")
    check = None
    if verify:
        local = replace(resolved, options={**resolved.options, "dtype": ResolvedOption("float32", "endpoint check")})
        check = ServedModelCheck(lambda: build_encoder(info, local, "cpu", "hf"), verify, settings.verify_floor)
    loaded = LoadedModel(model=None, tokenizer=tokenizer, width=client.width, hidden_size=hidden)
    if source is None:  # no local folder and no name given: the model is what the server calls it
        source = ModelSource(client.served.name, None, None)
    logger.info(
        "encoding through %s at %s (%d request(s) in flight at most)",
        client.served.name,
        ", ".join(settings.base_urls),
        client.workers,
    )
    resolution = with_batching(resolved, batching, "an endpoint (per request)")
    return Encoder(loaded, options, source, None, resolution=resolution, endpoint=client, endpoint_check=check)


def _explain_custom_code(info: CheckpointInfo, resolved: ResolvedOptions) -> None:
    """Say what happens to a checkpoint's custom model code; refuse to guess when nothing decides.

    Raises:
        InvalidOptionError: custom code, no recognised preset, and trust_remote_code never set.
    """
    code = info.remote_code
    if not code:
        return
    if resolved["trust_remote_code"]:
        logger.info("running the checkpoint's own model code %s (trust_remote_code=True)", code)
        return
    stock = f"transformers' stock class for model_type {info.model_type!r}"
    if resolved.preset is not None:
        logger.info(
            "%s ships custom model code (%s), which qzhou-eval does not run: the weights load into %s and "
            "%s reproduces it in memory (%s); --trust_remote_code true runs the checkpoint's code instead",
            info.source.name_or_path,
            code,
            stock,
            resolved.preset.label,
            ", ".join(resolved.preset.preset.checkpoint_code_does) or "no changes needed",
        )
        return
    if resolved.source("trust_remote_code") == EXPLICIT:
        logger.warning("custom model code %s not run (trust_remote_code=False): the weights load into %s", code, stock)
        return
    raise InvalidOptionError(
        f"{info.source.name_or_path} declares custom model code ({code}) and is not a published model qzhou-eval "
        f"recognises, so it cannot tell what that code changes. Pass --trust_remote_code true "
        f"(trust_remote_code=True) to run it, or --trust_remote_code false to load the weights into {stock}"
    )
