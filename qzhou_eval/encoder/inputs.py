"""Input preparation exactly as the reference encoder does it: validate, 'Null', prefix, template."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from qzhou_eval.constants import EMPTY_TEXT_REPLACEMENT, TEMPLATE_TEXT_SLOT
from qzhou_eval.errors import InputTextError
from qzhou_eval.option_table import check_template

logger = logging.getLogger(__name__)


def validate_texts(texts: Sequence[str]) -> list[str]:
    """Reject non-strings with the offending index; accept a bare string as one text.

    Raises:
        InputTextError: (a TypeError) naming the first bad index and its type.
    """
    if isinstance(texts, str):
        texts = [texts]
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputTextError(
                f"texts[{i}] is {type(text).__name__} ({text!r:.40}), not str; clean the input "
                "(the reference replaces only empty strings, never None)"
            )
    return out


class InputFormatter:
    """Turns raw texts into model inputs: ``template(prefix + (text or 'Null'))``, lowercased on request.

    The empty-text substitution is logged once per formatter, with its count. Lowercasing comes last,
    over the whole input, as sentence-transformers' ``do_lower_case`` does.
    """

    def __init__(self, template: str | None, lowercase: bool = False) -> None:
        self.template = check_template(template)
        self.lowercase = lowercase
        self._warned_empty = False

    def __call__(self, texts: Sequence[str], prefix: str = "") -> list[str]:
        texts = validate_texts(texts)
        empty = sum(1 for t in texts if t == "")
        if empty and not self._warned_empty:
            logger.warning(
                "%d empty text(s) replaced by %r, as the QZhou reference encoder does (logged once)",
                empty,
                EMPTY_TEXT_REPLACEMENT,
            )
            self._warned_empty = True
        joined = [prefix + (t if t != "" else EMPTY_TEXT_REPLACEMENT) for t in texts]
        if self.template is not None:
            head, tail = self.template.split(TEMPLATE_TEXT_SLOT)
            joined = [head + t + tail for t in joined]
        return [t.lower() for t in joined] if self.lowercase else joined
