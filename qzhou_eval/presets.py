"""Published evaluation settings of the QZhou models, kept as data under reproducibility/presets/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from qzhou_eval._paths import data_dir
from qzhou_eval.errors import InvalidOptionError

# load_encoder keywords a preset may set.
PRESET_OPTION_KEYS = frozenset({
    "pooling", "normalize", "dim", "mrl_dims", "max_length", "bidirectional", "prompt_template",
    "token_prepending", "dtype", "batch_size", "trust_remote_code",
})


@dataclass(frozen=True)
class Preset:
    """One published model's evaluation settings."""

    name: str
    model: str
    options: dict[str, Any]
    description: str = ""
    benchmarks: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def available_presets() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in data_dir("presets").glob("*.json"))


def load_preset(name: str) -> Preset:
    """Read a bundled preset by name.

    Raises:
        InvalidOptionError: for an unknown name (listing the valid ones) or an unknown option key.
    """
    names = available_presets()
    if name not in names:
        raise InvalidOptionError.for_choice("preset", name, names)
    path = data_dir("presets") / f"{name}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    options = data.get("options", {})
    unknown = set(options) - PRESET_OPTION_KEYS
    if unknown:
        raise InvalidOptionError(f"preset file {path} sets unknown options {sorted(unknown)}")
    return Preset(
        name=name,
        model=data["model"],
        options=options,
        description=data.get("description", ""),
        benchmarks=tuple(data.get("benchmarks", ())),
        extra={k: v for k, v in data.items() if k not in ("model", "options", "description", "benchmarks")},
    )
