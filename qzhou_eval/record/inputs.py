"""What a result's record says produced it (besides the data): the record format, model-free.

Written by the runner into every task record and manifest, compared on resume, read by reports. Identity
is by resolved value, so spelling out a default is not a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunInputs:
    """Everything besides the data that decides a run's scores."""

    model_name: str
    revision: str
    options: dict[str, Any]
    use_instruction: bool
    instructions_sha256: str | None

    def as_record(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "revision": self.revision,
            "options": dict(sorted(self.options.items())),
            "use_instruction": self.use_instruction,
            "instructions_sha256": self.instructions_sha256,
        }

    @classmethod
    def from_record(cls, data: Any) -> RunInputs:
        """Raises KeyError/TypeError on a malformed record (callers treat that as unreadable)."""
        return cls(
            str(data["model_name"]),
            str(data["revision"]),
            dict(data["options"]),
            bool(data["use_instruction"]),
            data["instructions_sha256"],
        )

    def differences(self, other: RunInputs, instructions: bool = True) -> list[str]:
        """``field: old -> new`` for each difference, ``self`` being the old side."""
        diffs = []
        for name in ("model_name", "revision", "use_instruction"):
            if getattr(self, name) != getattr(other, name):
                diffs.append(f"{name}: {getattr(self, name)!r} -> {getattr(other, name)!r}")
        for key in sorted(set(self.options) | set(other.options)):
            if self.options.get(key) != other.options.get(key):
                diffs.append(f"{key}: {self.options.get(key)!r} -> {other.options.get(key)!r}")
        if instructions and self.instructions_sha256 != other.instructions_sha256:
            diffs.append("instruction set differs")
        return diffs
