"""The pooling modes, torch-free, so checkpoint reading and option resolution need no torch import."""

from __future__ import annotations

from enum import Enum

from qzhou_eval.errors import InvalidOptionError


class Pooling(str, Enum):
    """How token states become one sentence vector."""

    MEAN = "mean"
    LAST = "last"
    CLS = "cls"

    @classmethod
    def from_str(cls, value: str | Pooling) -> Pooling:
        """Parse a pooling name; the reference scripts' spellings are accepted too.

        Raises:
            InvalidOptionError: listing the valid names.

        Example:
            >>> Pooling.from_str("last_token")
            <Pooling.LAST: 'last'>
        """
        if isinstance(value, Pooling):
            return value
        key = str(value).strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise InvalidOptionError.for_choice("Pooling", value, [p.value for p in cls]) from None


# Spellings used by the reference scripts (--pooling_mode) and sentence-transformers configs.
_ALIASES = {
    "avg": "mean",
    "average": "mean",
    "mean_tokens": "mean",
    "last_token": "last",
    "lasttoken": "last",
    "eos_token": "last",
    "eos": "last",
    "cls_token": "cls",
    "first": "cls",
}
