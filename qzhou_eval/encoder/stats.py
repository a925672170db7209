"""Where each embedding came from (the model, a repeat within a call, or the cache): reuse is not deduplication."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EncodeStats:
    """Where each input's vector came from, so reuse is not confused with deduplication."""

    inputs: int = 0  # texts asked for
    duplicates: int = 0  # repeats within one encode call (encoded once)
    reused_this_run: int = 0  # found in the cache, stored earlier in this run
    reused_earlier: int = 0  # found in the cache, stored by an earlier run
    encoded: int = 0  # went through the model
    repaired: int = 0  # cache entries that failed their checksum and were re-encoded
    tokens: int = 0  # real tokens this process's forward passes computed (after truncation)
    padded_tokens: int = 0  # tokens those passes computed, padding included (tokens / padded_tokens: efficiency)
    encode_s: float = 0.0  # wall seconds inside Encoder.encode (the rest of a task's time is mteb's scoring)

    def add(self, other: EncodeStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def minus(self, before: EncodeStats) -> EncodeStats:
        return EncodeStats(**{n: getattr(self, n) - getattr(before, n) for n in self.__dataclass_fields__})

    def copy(self) -> EncodeStats:
        return EncodeStats(**{n: getattr(self, n) for n in self.__dataclass_fields__})

    def as_record(self) -> dict[str, float]:
        out = {n: getattr(self, n) for n in self.__dataclass_fields__}
        out["encode_s"] = round(self.encode_s, 3)
        return out

    @property
    def token_efficiency(self) -> float | None:
        """Useful over computed tokens of the forward passes (1.0: no padding); None when none ran here."""
        return self.tokens / self.padded_tokens if self.padded_tokens else None

    def describe(self) -> str:
        return (
            f"{self.inputs} inputs: {self.encoded} encoded, {self.duplicates} repeats within a call, "
            f"{self.reused_this_run} reused from earlier in this run, {self.reused_earlier} from earlier runs"
            + (f", {self.repaired} damaged cache entries re-encoded" if self.repaired else "")
            + (
                f"; {self.tokens} tokens in {self.padded_tokens} computed ({self.token_efficiency:.1%} useful)"
                if self.padded_tokens
                else ""
            )
        )
