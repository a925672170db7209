"""An OpenAI-compatible chat endpoint on 127.0.0.1 that answers from a Python function.

For rehearsing a synthesis run offline, with no key and no cost: the tests script good and bad answers,
HTTP failures and stalls per request through it, and ``reproducibility/synth/loopback_run.py`` runs a
whole dataset through it. The server counts attempts and answers per request, so a resumed run can be
checked to ask nothing twice.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qzhou_eval.testing.loopback_server import Answer, LoopbackServer, Stall, error
from qzhou_eval.train.synth.prompts import OPERATIONS

__all__ = ["AnswerFn", "ChatRequest", "Fail", "LoopbackChat", "Reply", "Stall"]

USAGE = {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}  # reported for every answer


@dataclass(frozen=True)
class ChatRequest:
    op: str  # the synthesis operation whose prompt was sent
    source: dict  # the user message: the source row as the model sees it
    attempt: int  # 1 for the first time this exact request arrives
    answered_total: int  # answers the server has sent so far, over all requests


@dataclass(frozen=True)
class Fail:
    """Answer with this HTTP status (429, 500, ...)."""

    status: int


Reply = str | Fail | Stall  # a str is the assistant message's content
AnswerFn = Callable[[ChatRequest], Reply]


def _operation(system_prompt: str) -> str:
    return next((name for name, op in OPERATIONS.items() if op.instructions == system_prompt), "unknown")


class LoopbackChat(LoopbackServer):
    """``with LoopbackChat(answer) as chat: ... chat.url ...``; ``chat.answered`` counts answers per request."""

    def __init__(self, answer: AnswerFn) -> None:
        self.answer = answer
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _reply(self, body: dict) -> Reply:
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        op = _operation(system)
        key = (op, user)
        with self._lock:
            self.attempts[key] += 1
            request = ChatRequest(op, json.loads(user), self.attempts[key], sum(self.answered.values()))
        reply = self.answer(request)
        if isinstance(reply, str):
            with self._lock:
                self.answered[key] += 1
        return reply

    def answer_post(self, path: str, body: dict[str, Any]) -> Answer:
        reply = self._reply(body)
        if isinstance(reply, Stall):
            return reply
        if isinstance(reply, Fail):
            return error(reply.status, f"loopback failure {reply.status}")
        message = {"role": "assistant", "content": reply}
        return 200, {
            "id": "loopback",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": USAGE,
        }
