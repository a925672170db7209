"""An OpenAI-compatible chat client with bounded retries, exponential backoff and a request/token budget.

The ``openai`` package does the HTTP; which failures are retried and how long to wait is
:mod:`qzhou_eval.remote.retry`'s rule, so each retry is counted by reason in the report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from qzhou_eval.errors import BudgetReached, InvalidOptionError, RequestFailed
from qzhou_eval.remote.retry import import_openai, retry_wait, transient_reason

logger = logging.getLogger(__name__)


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
        openai = import_openai("synthesis", "synth")
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
                reason = transient_reason(self._openai, exc)
                if reason is None:
                    raise InvalidOptionError(
                        f"the endpoint refused the request ({exc}); check base_url, model and the API key"
                    ) from None
                self.retries[reason] += 1
                if attempt == self.max_retries:
                    raise RequestFailed(f"{reason} after {self.max_retries} retries") from None
                delay = retry_wait(exc, attempt, self.backoff_s)
                logger.debug("%s; retrying in %.2fs", reason, delay)
                time.sleep(delay)
                continue
            tokens = getattr(done.usage, "total_tokens", 0) or 0
            with self._lock:
                self.tokens += tokens
            return Answer(done.choices[0].message.content or "", tokens)
        raise AssertionError("unreachable")
