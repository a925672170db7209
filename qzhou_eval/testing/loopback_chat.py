"""An OpenAI-compatible chat endpoint on 127.0.0.1 that answers from a Python function.

For rehearsing a synthesis run offline, with no key and no cost: the tests script good and bad answers,
HTTP failures and stalls per request through it, and ``reproducibility/synth/loopback_run.py`` runs a
whole dataset through it. The server counts attempts and answers per request, so a resumed run can be
checked to ask nothing twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qzhou_eval.train.synth.prompts import OPERATIONS

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


@dataclass(frozen=True)
class Stall:
    """Send nothing for this long, then drop the connection (a timeout for a client that waits less)."""

    seconds: float


Reply = str | Fail | Stall  # a str is the assistant message's content
AnswerFn = Callable[[ChatRequest], Reply]


def _operation(system_prompt: str) -> str:
    return next((name for name, op in OPERATIONS.items() if op.instructions == system_prompt), "unknown")


class LoopbackChat:
    """``with LoopbackChat(answer) as chat: ... chat.url ...``; ``chat.answered`` counts answers per request."""

    def __init__(self, answer: AnswerFn) -> None:
        self.answer = answer
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "use LoopbackChat as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> LoopbackChat:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = chat._reply(body)
                if isinstance(reply, Stall):
                    time.sleep(reply.seconds)
                    return
                if isinstance(reply, Fail):
                    self._send(reply.status, {"error": {"message": f"loopback failure {reply.status}"}})
                    return
                self._send(
                    200,
                    {
                        "id": "loopback",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}
                        ],
                        "usage": USAGE,
                    },
                )

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

        return Handler
