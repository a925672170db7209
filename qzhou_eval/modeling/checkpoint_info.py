"""What a checkpoint says about itself: model class, custom code, hub id, and the options it declares.

Torch-free (JSON files only), so preset recognition and option resolution can run before any weights
are loaded, and in the runner's no-torch fast path. This module is the one owner of "which file of a
checkpoint declares which option".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from qzhou_eval.errors import ModelFormatError
from qzhou_eval.modeling.source import ModelSource
from qzhou_eval.modeling.st_layout import SentenceTransformerLayout, read_layout

# A local folder inside the Hugging Face hub cache: .../models--<org>--<name>/snapshots/<revision>
_HUB_CACHE_DIR = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/[^/]+/?$")


@dataclass(frozen=True)
class Declared:
    """One option value a checkpoint declares, and the file that declares it."""

    value: Any
    where: str


@dataclass(frozen=True)
class CheckpointInfo:
    """The facts qzhou-eval reads from a checkpoint's small files."""

    source: ModelSource
    layout: SentenceTransformerLayout | None
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    auto_map: dict[str, str] = field(default_factory=dict)
    hidden_size: int | None = None
    max_positions: int | None = None  # config.json max_position_embeddings: no backend truncates beyond it

    @property
    def config_file(self) -> str:
        """Where ``max_positions`` is declared (names the cap of ``max_length`` in a run's record)."""
        sub = self.layout.transformer_subfolder if self.layout else ""
        return f"checkpoint: {sub + '/' if sub else ''}config.json max_position_embeddings"

    @property
    def hub_id(self) -> str | None:
        """``org/name`` on the hub: the id itself, or recovered from a hub-cache snapshot path."""
        if not self.source.is_local:
            return self.source.name_or_path
        match = _HUB_CACHE_DIR.search(self.source.local_path.as_posix())
        return f"{match['org']}/{match['name']}" if match else None

    @property
    def hub_revision(self) -> str | None:
        """The hub commit these files are, when known: a hub-cache snapshot folder's name (the commit), or the
        revision a hub id was loaded at. The leaderboard files results under it (``submit`` uses it)."""
        if not self.source.is_local:
            return self.source.revision
        return self.source.local_path.name if _HUB_CACHE_DIR.search(self.source.local_path.as_posix()) else None

    @property
    def remote_code(self) -> str | None:
        """The custom model class the checkpoint asks transformers to import (``auto_map``), if any."""
        models = [ref for key, ref in self.auto_map.items() if key.startswith("AutoModel")]
        return self.auto_map.get("AutoModel") or (models[0] if models else None)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Every model class the config names: ``architectures`` and the class part of ``auto_map`` entries."""
        mapped = tuple(ref.rsplit(".", 1)[-1] for ref in self.auto_map.values())
        return self.architectures + mapped

    def declared_options(self) -> dict[str, Declared]:
        """Options the checkpoint itself sets (sentence-transformers files, qzhou-eval's own block)."""
        layout = self.layout
        if layout is None:
            return {}
        modules = "modules.json"
        st_config = (
            f"{layout.transformer_subfolder + '/' if layout.transformer_subfolder else ''}sentence_bert_config.json"
        )
        out = {
            "normalize": Declared(
                layout.normalize, f"{modules} (Normalize module {'present' if layout.normalize else 'absent'})"
            )
        }
        if layout.pooling is not None:
            out["pooling"] = Declared(layout.pooling, f"{modules} (Pooling config)")
        if layout.max_seq_length:
            out["max_length"] = Declared(int(layout.max_seq_length), f"{st_config} max_seq_length")
        if layout.do_lower_case is not None:
            out["lowercase"] = Declared(bool(layout.do_lower_case), f"{st_config} do_lower_case")
        if layout.matryoshka_dims:
            out["mrl_dims"] = Declared(
                list(layout.matryoshka_dims), "config_sentence_transformers.json matryoshka_dims"
            )
        if layout.bidirectional is not None:
            out["bidirectional"] = Declared(
                layout.bidirectional, "config_sentence_transformers.json qzhou_eval.bidirectional"
            )
        return out


def read_checkpoint(source: ModelSource) -> CheckpointInfo:
    """Read ``modules.json`` (if any) and the transformer's ``config.json``; no weights, no torch."""
    layout = read_layout(source)
    sub = layout.transformer_subfolder if layout else ""
    name = f"{sub}/config.json" if sub else "config.json"
    config = source.read_json(name)
    if config is not None and not isinstance(config, dict):
        raise ModelFormatError(
            f"{name} of {source.name_or_path} is a JSON {type(config).__name__}, not an object; a transformers "
            "config.json maps settings to values — fetch the checkpoint again"
        )
    config = config or {}
    auto_map = config.get("auto_map") if isinstance(config.get("auto_map"), dict) else {}
    return CheckpointInfo(
        source=source,
        layout=layout,
        model_type=config.get("model_type"),
        architectures=tuple(config.get("architectures") or ()),
        auto_map={str(k): _class_ref(v) for k, v in auto_map.items() if _class_ref(v)},
        hidden_size=config.get("hidden_size"),
        max_positions=_positive_int(config.get("max_position_embeddings")),
    )


def _class_ref(value: Any) -> str:
    """``module.Class`` of an auto_map entry (tokenizer entries are [slow, fast] lists; hub refs carry 'repo--')."""
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if v), "")
    return str(value or "").split("--")[-1]


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
