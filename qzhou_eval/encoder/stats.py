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

    def add(self, other: EncodeStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def minus(self, before: EncodeStats) -> EncodeStats:
        return EncodeStats(**{n: getattr(self, n) - getattr(before, n) for n in self.__dataclass_fields__})

    def copy(self) -> EncodeStats:
        return EncodeStats(**{n: getattr(self, n) for n in self.__dataclass_fields__})

    def as_record(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in self.__dataclass_fields__}

    def describe(self) -> str:
        return (
            f"{self.inputs} inputs: {self.encoded} encoded, {self.duplicates} repeats within a call, "
            f"{self.reused_this_run} reused from earlier in this run, {self.reused_earlier} from earlier runs"
            + (f", {self.repaired} damaged cache entries re-encoded" if self.repaired else "")
        )
