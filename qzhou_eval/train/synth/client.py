"""An OpenAI-compatible chat client with bounded retries, exponential backoff and a request/token budget.

The ``openai`` package does the HTTP; retries are ours (its own are turned off) so each retry is counted
by reason in the report: ``rate_limited`` (429), ``server_error`` (5xx), ``timeout``, ``connection``.
A ``Retry-After`` header sets the wait when the server sends one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from qzhou_eval.errors import InvalidOptionError

logger = logging.getLogger(__name__)


class BudgetReached(Exception):
    """The configured request or token budget is spent; the run stops cleanly and can be resumed."""


class RequestFailed(Exception):
    """A request still failed after every retry (it is not recorded, so a rerun asks again)."""


@dataclass
class Answer:
    text: str
    tokens: int


class ChatClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        temperature: float,
        max_requests: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise InvalidOptionError("synthesis needs the openai package: pip install -e '.[synth]'") from None
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.temperature = temperature
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.requests = 0  # HTTP requests sent (retries included)
        self.tokens = 0
        self.retries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _spend_request(self) -> None:
        with self._lock:
            if (self.max_requests is not None and self.requests >= self.max_requests) or (
                self.max_tokens is not None and self.tokens >= self.max_tokens
            ):
                raise BudgetReached(f"budget reached ({self.requests} requests, {self.tokens} tokens)")
            self.requests += 1

    def _retry_reason(self, exc: Exception) -> str | None:
        o = self._openai
        if isinstance(exc, o.RateLimitError):
            return "rate_limited"
        if isinstance(exc, o.InternalServerError) or (isinstance(exc, o.APIStatusError) and exc.status_code >= 500):
            return "server_error"
        if isinstance(exc, o.APITimeoutError):
            return "timeout"
        if isinstance(exc, o.APIConnectionError):
            return "connection"
        return None

    def _wait(self, exc: Exception, attempt: int) -> float:
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            return max(0.0, float(header))
        except (TypeError, ValueError):
            return self.backoff_s * 2**attempt * (1 + 0.25 * random.random())

    def chat(self, messages: list[dict]) -> Answer:
        """One answer, retrying transient failures.

        Raises:
            BudgetReached: before a request the budget does not allow.
            RequestFailed: still failing after ``max_retries`` retries.
            InvalidOptionError: a non-transient refusal (bad key, unknown model, bad request), with the server's words.
        """
        for attempt in range(self.max_retries + 1):
            self._spend_request()
            try:
                done = self.client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature
                )
            except self._openai.APIError as exc:
                reason = self._retry_reason(exc)
                if reason is None:
                    raise InvalidOptionError(
                        f"the endpoint refused the request ({exc}); check base_url, model and the API key"
                    ) from None
                self.retries[reason] += 1
                if attempt == self.max_retries:
                    raise RequestFailed(f"{reason} after {self.max_retries} retries") from None
                delay = self._wait(exc, attempt)
                logger.debug("%s; retrying in %.2fs", reason, delay)
                time.sleep(delay)
                continue
            tokens = getattr(done.usage, "total_tokens", 0) or 0
            with self._lock:
                self.tokens += tokens
            return Answer(done.choices[0].message.content or "", tokens)
        raise AssertionError("unreachable")
