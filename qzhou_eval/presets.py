"""Published evaluation settings of the QZhou models, kept as data under reproducibility/presets/.

This module owns two protocol decisions: what each published model's evaluation sets, and how a
checkpoint is recognised as one of them (from its hub id or from what its config and
sentence-transformers files say), so the model cards' own commands reproduce the reference with no
``--preset``. Recognition reads JSON only; it never loads weights or imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from qzhou_eval._paths import data_dir
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.checkpoint_info import CheckpointInfo
from qzhou_eval.option_table import PRESET_OPTION_KEYS

# What the user passes to turn recognition off.
NO_PRESET = "none"
_SIGNATURE_KEYS = frozenset({"model_type", "class_name_contains", "custom_code", "pooling", "dense_out_features"})


@dataclass(frozen=True)
class Signature:
    """Facts that together identify a published checkpoint; a key left out is not checked."""

    model_type: str | None = None
    class_name_contains: str | None = None
    custom_code: bool | None = None
    pooling: str | None = None
    dense_out_features: int | None = None

    def matches(self, info: CheckpointInfo) -> bool:
        layout = info.layout
        checks = [
            self.model_type is None or info.model_type == self.model_type,
            self.class_name_contains is None
            or any(self.class_name_contains.lower() in name.lower() for name in info.class_names),
            self.custom_code is None or bool(info.remote_code) == self.custom_code,
            self.pooling is None
            or (layout is not None and layout.pooling is not None and layout.pooling.value == self.pooling),
            self.dense_out_features is None
            or (layout is not None and layout.dense_out_features[-1:] == [self.dense_out_features]),
        ]
        return all(checks)

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if v is not None)


@dataclass(frozen=True)
class Preset:
    """One published model's evaluation settings.

    ``checkpoint_code_does`` names the options the checkpoint's own (trust_remote_code) model class
    performs by itself; with ``trust_remote_code=True`` the harness leaves them to that code.
    """

    name: str
    model: str
    options: dict[str, Any]
    description: str = ""
    benchmarks: tuple[str, ...] = ()
    instructions: str | None = None
    hub_ids: tuple[str, ...] = ()
    signatures: tuple[Signature, ...] = ()
    checkpoint_code_does: tuple[str, ...] = ()
    reference_block_size: int | None = None  # rows the reference hands its batcher at a time (Zh: 128), if any
    # The published checkpoint's shape (its config.json fields, Dense layers, where they come from): what
    # ``plan`` and the GPU check build when the weights are not on this machine.
    architecture: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def recognises(self, info: CheckpointInfo) -> str | None:
        """Why ``info`` is this preset's model (a short reason), or None."""
        hub_id = info.hub_id
        if hub_id and hub_id.lower() in (h.lower() for h in self.hub_ids):
            return f"hub id {hub_id}"
        for signature in self.signatures:
            if signature.matches(info):
                return f"checkpoint files ({signature.describe()})"
        return None


@dataclass(frozen=True)
class PresetChoice:
    """The preset a load uses and how it was chosen ('requested' or 'recognised from ...')."""

    preset: Preset
    how: str

    @property
    def label(self) -> str:
        return f"preset {self.preset.name}"


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
        raise InvalidOptionError.for_choice("preset", name, [*names, NO_PRESET])
    path = data_dir("presets") / f"{name}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    options = data.get("options", {})
    unknown = set(options) - PRESET_OPTION_KEYS
    if unknown:
        raise InvalidOptionError(f"preset file {path} sets unknown options {sorted(unknown)}")
    recognize = data.get("recognize", {})
    for signature in recognize.get("signatures", []):
        if set(signature) - _SIGNATURE_KEYS:
            raise InvalidOptionError(
                f"preset file {path}: unknown signature keys {sorted(set(signature) - _SIGNATURE_KEYS)}"
            )
    known = {
        "model",
        "options",
        "description",
        "benchmarks",
        "instructions",
        "recognize",
        "checkpoint_code_does",
        "reference_block_size",
        "architecture",
    }
    return Preset(
        name=name,
        model=data["model"],
        options=options,
        description=data.get("description", ""),
        benchmarks=tuple(data.get("benchmarks", ())),
        instructions=data.get("instructions"),
        hub_ids=tuple(recognize.get("hub_ids", ())),
        signatures=tuple(Signature(**s) for s in recognize.get("signatures", [])),
        checkpoint_code_does=tuple(data.get("checkpoint_code_does", ())),
        reference_block_size=data.get("reference_block_size"),
        architecture=data.get("architecture"),
        extra={k: v for k, v in data.items() if k not in known},
    )


def recognise(info: CheckpointInfo) -> PresetChoice | None:
    """The bundled preset whose published model ``info`` is, or None (no guess is made)."""
    for name in available_presets():
        preset = load_preset(name)
        reason = preset.recognises(info)
        if reason:
            return PresetChoice(preset, f"recognised from {reason}")
    return None


def recognise_name(name: str | None) -> PresetChoice | None:
    """The bundled preset whose published hub id is ``name`` (a served model has no files to look at)."""
    for preset_name in available_presets() if name else ():
        preset = load_preset(preset_name)
        if name.lower() in (h.lower() for h in preset.hub_ids):
            return PresetChoice(preset, f"recognised from the model name {name}")
    return None


def select_preset(
    requested: str | Preset | PresetChoice | None, info: CheckpointInfo | None, name: str | None = None
) -> PresetChoice | None:
    """The preset a load uses: the one asked for, ``none`` for no preset, or (None) the one recognised
    from the checkpoint ``info`` or, without files (a served model), from its hub id ``name``.

    Pure selection, no logging: callers may ask more than once per run; ``build_encoder`` reports it.

    Raises:
        InvalidOptionError: for an unknown preset name, listing the valid ones.
    """
    if isinstance(requested, PresetChoice):
        return requested
    if isinstance(requested, Preset):
        return PresetChoice(requested, "requested")
    if requested is not None:
        if str(requested).lower() == NO_PRESET:
            return None
        return PresetChoice(load_preset(str(requested)), "requested")
    return recognise(info) if info is not None else recognise_name(name)
