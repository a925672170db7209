"""Checks every synthesised output passes before it is kept; each failure has a reason the report counts.

Surface checks need no model: the answer parses as a JSON object with the operation's fields (non-empty
strings); its length is within the band of what it replaces; it is written in the same script as its
source (a Unicode-script detector: Han, Latin, Cyrillic, ...); it is not a copy of its source after
normalisation. Semantic checks score with an embedding model: a paraphrase stays close to its source, an
augmented query is not a rewording of the source query, a generated negative scores below the positive.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

from qzhou_eval.train.cleaning import normalise

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SCRIPTS = (
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
    "CYRILLIC",
    "ARABIC",
    "GREEK",
    "HEBREW",
    "DEVANAGARI",
    "THAI",
    "LATIN",
)


def parse_answer(text: str, fields: tuple[str, ...]) -> tuple[dict | None, str | None]:
    """The answer's fields, or the reason it is unusable (``malformed_json`` or ``schema``)."""
    body = _FENCE.sub(r"\1", text.strip())
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None, "malformed_json"
    if not isinstance(obj, dict) or any(not isinstance(obj.get(f), str) or not obj[f].strip() for f in fields):
        return None, "schema"
    return {f: obj[f].strip() for f in fields}, None


def dominant_script(text: str) -> str | None:
    """The Unicode script most of the letters belong to (Japanese kana and Han count as one script family)."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            script = next((s for s in _SCRIPTS if name.startswith(s)), "OTHER")
            counts["CJK" if script in ("HIRAGANA", "KATAKANA") else script] += 1
    return counts.most_common(1)[0][0] if counts else None


def surface_reason(output: str, source: str, band: float | None) -> str | None:
    """``language``, ``length_band`` or ``copy`` for an output replacing ``source``; None when it passes."""
    if dominant_script(output) != dominant_script(source):
        return "language"
    if band is not None and abs(len(output) - len(source)) > band * len(source):
        return "length_band"
    if normalise(output) == normalise(source):
        return "copy"
    return None
