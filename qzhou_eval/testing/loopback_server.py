"""A scriptable HTTP server on 127.0.0.1 that answers JSON: the one base of every OpenAI-compatible test server.

A subclass says what a request gets (:meth:`LoopbackServer.answer_get`, :meth:`LoopbackServer.answer_post`): a
``(status, payload)`` pair, or a :class:`Stall`. The chat endpoint of the synthesis rehearsal
(``loopback_chat.py``) and the tests' embeddings stub are written on it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Stall:
    """Send nothing for this long, then drop the connection (a timeout for a client that waits less)."""

    seconds: float


Answer = tuple[int, dict[str, Any]] | Stall


def error(status: int, message: str) -> Answer:
    """An OpenAI-style error answer."""
    return status, {"error": {"message": message}}


class LoopbackServer:
    """``with Server(...) as server: ... server.url ...``: the server runs in a thread until the block ends."""

    def __enter__(self) -> LoopbackServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        assert getattr(self, "_httpd", None) is not None, f"use {type(self).__name__} as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def answer_get(self, path: str) -> Answer:
        return error(404, "not found")

    def answer_post(self, path: str, body: dict[str, Any]) -> Answer:
        return error(404, "not found")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._reply(server.answer_get(self.path))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._reply(server.answer_post(self.path, body))

            def _reply(self, answer: Answer) -> None:
                if isinstance(answer, Stall):
                    time.sleep(answer.seconds)
                    return
                status, payload = answer
                data = json.dumps(payload).encode()  # NaN is written as NaN, as Python servers do
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

        return Handler
