"""Checkpoint -> (model, tokenizer, output head): left padding, dtype, sdpa and device choice."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from qzhou_eval.errors import InvalidOptionError, ModelFormatError, QZhouEvalError
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.modeling.source import ModelSource
from qzhou_eval.modeling.st_layout import SentenceTransformerLayout

logger = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA when present, else CPU.

    Raises:
        InvalidOptionError: a malformed device, or a CUDA/MPS device this machine does not have.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidOptionError(f"{device!r} is not a valid device (use 'cpu', 'cuda' or 'cuda:N')") from exc
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidOptionError(
                f"--device {device} was asked for, but torch {torch.__version__} sees no CUDA "
                "device here; use --device cpu (or leave --device out)"
            )
        if resolved.index is not None and resolved.index >= count:
            raise InvalidOptionError(
                f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError(f"--device {device} was asked for, but MPS is not available; use --device cpu")
    return resolved


def check_device(device: str | None) -> None:
    """Fail fast on a device this machine cannot use (before data checks and model loading)."""
    if device is not None:
        resolve_device(device)


@dataclass
class LoadedModel:
    """Everything the encoder needs to run one checkpoint."""

    model: nn.Module | None  # None under the vLLM backend: vLLM holds the weights in its own engine
    tokenizer: object
    dense: list[nn.Module] = field(default_factory=list)
    width: int = 0
    hidden_size: int = 0
    absolute_positions: bool = False
    accepts_token_type_ids: bool = False
    max_positions: int | None = None
    attn_implementation: str | None = None


@contextlib.contextmanager
def checkpoint_errors(where: str, part: str) -> Iterator[None]:
    """What transformers raises on a checkpoint it cannot read becomes one error naming the folder and the fix.

    A missing optional package is left to the CLI (it names the package and the install command).
    """
    try:
        yield
    except (ImportError, QZhouEvalError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # transformers, safetensors and torch raise many types for unreadable checkpoints
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        hint = "fetch the checkpoint again"
        if "does not recognize this architecture" in str(exc) or "model_type" in str(exc):
            hint = "upgrade transformers, or check config.json's model_type"
        raise ModelFormatError(
            f"{where}: its {part} cannot be loaded ({type(exc).__name__}: {message}); {hint}"
        ) from exc


def _subpath(source: ModelSource, sub: str) -> tuple[str, dict]:
    """(path or hub id, extra from_pretrained kwargs) for a module subfolder."""
    if source.is_local:
        return str(source.local_path / sub if sub else source.local_path), {}
    extra = {"revision": source.revision} if source.revision else {}
    if sub:
        extra["subfolder"] = sub
    return source.name_or_path, extra


def load_tokenizer(source: ModelSource, layout: SentenceTransformerLayout | None, trust_remote_code: bool):
    """Tokenizer with padding forced to the left (the QZhou protocol)."""
    from transformers import AutoTokenizer

    where, extra = _subpath(source, layout.transformer_subfolder if layout else "")
    with checkpoint_errors(where, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code, **extra)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelFormatError(f"the tokenizer of {source.name_or_path!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_backbone_config(source: ModelSource, layout: SentenceTransformerLayout | None, trust_remote_code: bool):
    """The transformer's config (for engines that load the weights themselves, as vLLM does)."""
    from transformers import AutoConfig

    where, extra = _subpath(source, layout.transformer_subfolder if layout else "")
    with checkpoint_errors(where, "config"):
        return AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code, **extra)


@dataclass(frozen=True)
class DeclaredShape:
    """A checkpoint's shape from its small files: the backbone's hidden size, the output width after its Dense
    heads, and its position count (what an engine or a server needs, with no weights loaded here)."""

    hidden_size: int
    width: int
    max_positions: int | None


def declared_shape(info: CheckpointInfo, trust_remote_code: bool) -> DeclaredShape:
    config = load_backbone_config(info.source, info.layout, trust_remote_code)
    hidden = int(getattr(config, "hidden_size", 0) or info.hidden_size or 0)
    layout = info.layout
    width = layout.dense_out_features[-1] if layout and layout.dense_out_features else hidden
    return DeclaredShape(hidden, width, getattr(config, "max_position_embeddings", None))


def _from_pretrained(where: str, extra: dict, dtype: torch.dtype, trust_remote_code: bool) -> tuple[nn.Module, str]:
    from transformers import AutoModel

    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code, **extra}
    try:
        return AutoModel.from_pretrained(where, attn_implementation="sdpa", **kwargs), "sdpa"
    except (ValueError, ImportError, NotImplementedError) as exc:
        if "sdpa" not in str(exc).lower() and "attn_implementation" not in str(exc):
            raise
        logger.warning("%s does not support sdpa attention (%s); using its default kernel", where, exc)
        model = AutoModel.from_pretrained(where, **kwargs)
        return model, getattr(model.config, "_attn_implementation", None) or "default"


def uses_absolute_positions(model: nn.Module) -> bool:
    """True for BERT-style learned position tables that index from 0 at the first column.

    RoBERTa-style embeddings (with ``padding_idx``) derive positions from the pad mask themselves,
    and rotary models only see relative offsets, so neither needs position ids under left padding.
    """
    embeddings = getattr(model, "embeddings", None)
    return (
        isinstance(getattr(embeddings, "position_embeddings", None), nn.Embedding)
        and getattr(embeddings, "padding_idx", None) is None
        and "position_ids" in inspect.signature(model.forward).parameters
    )


def _load_dense(source: ModelSource, subfolders: list[str], trust_remote_code: bool) -> list[nn.Module]:
    from sentence_transformers.models import Dense

    heads = []
    for sub in subfolders:
        where, _ = _subpath(source, "")
        head = Dense.load(
            where,
            subfolder=sub,
            revision=source.revision,
            local_files_only=source.is_local,
            trust_remote_code=trust_remote_code,
        )
        heads.append(head)
    return heads


def load_backbone(
    source: ModelSource,
    layout: SentenceTransformerLayout | None,
    *,
    dtype: torch.dtype,
    device: torch.device,
    trust_remote_code: bool,
) -> LoadedModel:
    """Load backbone, tokenizer and any Dense heads, in eval mode on ``device``."""
    where, extra = _subpath(source, layout.transformer_subfolder if layout else "")
    with checkpoint_errors(where, "weights"):
        model, attn = _from_pretrained(where, extra, dtype, trust_remote_code)
    model.eval().to(device)
    tokenizer = load_tokenizer(source, layout, trust_remote_code)
    # Dense heads run in the model dtype: sentence-transformers runs every module of the reference in bf16.
    dense = [
        head.to(device=device, dtype=dtype).eval()
        for head in _load_dense(source, layout.dense_subfolders if layout else [], trust_remote_code)
    ]
    hidden = int(getattr(model.config, "hidden_size", 0) or 0)
    width = hidden
    for head in dense:
        width = int(head.get_embedding_dimension())
    forward_params = inspect.signature(model.forward).parameters
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        dense=dense,
        width=width,
        hidden_size=hidden,
        absolute_positions=uses_absolute_positions(model),
        accepts_token_type_ids="token_type_ids" in forward_params,
        max_positions=getattr(model.config, "max_position_embeddings", None),
        attn_implementation=attn,
    )
