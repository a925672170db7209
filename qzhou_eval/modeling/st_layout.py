"""Read a sentence-transformers folder's ``modules.json``: transformer path, pooling, Dense, Normalize.

Torch-free: the runner reads it before deciding whether any model has to be loaded at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from qzhou_eval.errors import ModelFormatError
from qzhou_eval.modeling.pooling_mode import Pooling
from qzhou_eval.modeling.source import ModelSource

logger = logging.getLogger(__name__)

# sentence-transformers module types, by the last component of their class path.
_TRANSFORMER, _POOLING, _DENSE, _NORMALIZE = "Transformer", "Pooling", "Dense", "Normalize"

# Pooling config keys (sentence_transformers.models.Pooling) that this harness can honour.
_POOLING_KEYS = {
    "pooling_mode_mean_tokens": Pooling.MEAN,
    "pooling_mode_lasttoken": Pooling.LAST,
    "pooling_mode_cls_token": Pooling.CLS,
}
_UNSUPPORTED_POOLING_KEYS = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
)


def pooling_config(mode: Pooling, width: int) -> dict:
    """``1_Pooling/config.json`` for ``mode``: what :func:`read_layout` reads back as that mode (the writer's half
    of this module's key table, so a trained checkpoint declares its pooling in the reader's words)."""
    config: dict = {"word_embedding_dimension": width, "include_prompt": True}
    config.update({key: chosen is mode for key, chosen in _POOLING_KEYS.items()})
    config.update(dict.fromkeys(_UNSUPPORTED_POOLING_KEYS, False))
    return config


@dataclass
class SentenceTransformerLayout:
    """What a sentence-transformers folder declares about how it embeds."""

    transformer_subfolder: str = ""
    pooling: Pooling | None = None
    dense_subfolders: list[str] = field(default_factory=list)
    dense_out_features: list[int] = field(default_factory=list)
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool | None = None
    matryoshka_dims: list[int] | None = None
    bidirectional: bool | None = None  # set by checkpoints that qzhou-eval's trainer wrote


def _module_kind(entry: dict) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def _pooling_from_config(config: dict, where: str) -> Pooling:
    for key in _UNSUPPORTED_POOLING_KEYS:
        if config.get(key):
            raise ModelFormatError(
                f"{where} asks for {key}, which qzhou-eval does not implement; "
                "pass pooling='mean', 'last' or 'cls' explicitly to override it"
            )
    if "pooling_mode" in config and isinstance(config["pooling_mode"], str):
        return Pooling.from_str(config["pooling_mode"])
    chosen = [mode for key, mode in _POOLING_KEYS.items() if config.get(key)]
    if len(chosen) != 1:
        raise ModelFormatError(
            f"{where} selects {len(chosen)} pooling modes; qzhou-eval needs exactly one (or pass pooling= explicitly)"
        )
    if config.get("include_prompt") is False:
        logger.warning("%s excludes prompt tokens from pooling; qzhou-eval pools over them (as QZhou does)", where)
    return chosen[0]


def read_layout(source: ModelSource) -> SentenceTransformerLayout | None:
    """Parse ``modules.json`` (None for a plain transformers checkpoint).

    Raises:
        ModelFormatError: for module types that would change embeddings but are not supported.
    """
    modules = source.read_json("modules.json")
    if modules is None:
        return None
    if not isinstance(modules, list):
        raise ModelFormatError(f"modules.json of {source.name_or_path!r} is not a list of modules")
    layout = SentenceTransformerLayout()
    for entry in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind, sub = _module_kind(entry), str(entry.get("path", "")).strip("/")
        if kind == _TRANSFORMER:
            layout.transformer_subfolder = sub
            st_config = source.read_json(f"{sub}/sentence_bert_config.json" if sub else "sentence_bert_config.json")
            if isinstance(st_config, dict):
                layout.max_seq_length = st_config.get("max_seq_length")
                layout.do_lower_case = st_config.get("do_lower_case")
        elif kind == _POOLING:
            config = source.read_json(f"{sub}/config.json")
            if not isinstance(config, dict):
                raise ModelFormatError(
                    f"{source.name_or_path}/{sub}/config.json is missing; the Pooling module needs it"
                )
            layout.pooling = _pooling_from_config(config, f"{source.name_or_path}/{sub}/config.json")
        elif kind == _DENSE:
            layout.dense_subfolders.append(sub)
            dense_config = source.read_json(f"{sub}/config.json")
            if isinstance(dense_config, dict) and dense_config.get("out_features"):
                layout.dense_out_features.append(int(dense_config["out_features"]))
        elif kind == _NORMALIZE:
            layout.normalize = True
        else:
            raise ModelFormatError(
                f"modules.json of {source.name_or_path!r} uses a {entry.get('type')!r} module, which qzhou-eval "
                "does not run; supported: Transformer, Pooling, Dense, Normalize"
            )
    top = source.read_json("config_sentence_transformers.json")
    if isinstance(top, dict) and top.get("matryoshka_dims"):
        layout.matryoshka_dims = [int(d) for d in top["matryoshka_dims"]]
    if isinstance(top, dict) and isinstance(top.get("qzhou_eval"), dict):
        layout.bidirectional = top["qzhou_eval"].get("bidirectional") or None
    return layout
