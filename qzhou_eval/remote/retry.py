"""Transient failures of an OpenAI-compatible server, and how long to wait before asking again.

The one owner of that rule for every client in the harness (synthesis's chat client, the endpoint
backend): ``openai``'s own retries are turned off so each retry is counted by reason — ``rate_limited``
(429), ``server_error`` (5xx), ``timeout``, ``connection`` — and a ``Retry-After`` header sets the wait.
"""

from __future__ import annotations

import random
from types import ModuleType

from qzhou_eval.errors import InvalidOptionError


def import_openai(purpose: str, extra: str) -> ModuleType:
    """The ``openai`` package, or an error naming the install command."""
    try:
        import openai
    except ImportError:
        raise InvalidOptionError(f'{purpose} needs the openai package: pip install "qzhou-eval[{extra}]"') from None
    return openai


def transient_reason(openai: ModuleType, exc: Exception) -> str | None:
    """Why ``exc`` is worth retrying, or None for a refusal that will not change (bad key, bad request)."""
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.InternalServerError) or (
        isinstance(exc, openai.APIStatusError) and exc.status_code >= 500
    ):
        return "server_error"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    return None


def retry_wait(exc: Exception, attempt: int, backoff_s: float, max_wait_s: float = 60.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's ``Retry-After``, else exponential
    backoff with jitter (so replicas that failed together do not retry together)."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return min(max_wait_s, max(0.0, float(header)))
    except (TypeError, ValueError):
        return min(max_wait_s, backoff_s * 2**attempt * (1 + 0.25 * random.random()))
