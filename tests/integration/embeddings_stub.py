"""A scriptable OpenAI-compatible ``/v1/embeddings`` server on 127.0.0.1, for the endpoint backend's failure paths.

Each text's vector is a fixed function of the text, so any answer can be checked. ``script(n, texts)``
decides what request ``n`` (0-based, over the server's life) gets: ``None`` (a good answer), an HTTP
status to fail with, ``("stall", seconds)``, or one of the bad answers ``"wrong_width"``, ``"nan"``,
``"wrong_model"``, ``"short"``. ``answered`` lists the texts of every good answer, in order.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def stub_vector(text: str, width: int) -> np.ndarray:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


class EmbeddingsStub:
    def __init__(self, model: str = "stub/model", width: int = 8, script=None, max_model_len: int = 512) -> None:
        self.model = model
        self.width = width
        self.script = script or (lambda n, texts: None)
        self.max_model_len = max_model_len
        self.requests = 0
        self.answered: list[list[str]] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def answered_texts(self) -> set[str]:
        return {t for texts in self.answered for t in texts}

    def __enter__(self) -> EmbeddingsStub:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, body: dict):
        texts = body["input"]
        with self._lock:
            n = self.requests
            self.requests += 1
            self.bodies.append(body)
        action = self.script(n, texts)
        if action is not None:
            return action
        vectors = np.stack([stub_vector(t, self.width) for t in texts])
        with self._lock:
            self.answered.append(list(texts))
        return 200, self._payload(texts, vectors.tolist(), self.model)

    def _payload(self, texts, rows, model) -> dict:
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        return {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    def _bad(self, kind: str, texts: list[str]):
        rows = np.stack([stub_vector(t, self.width) for t in texts])
        if kind == "wrong_width":
            return 200, self._payload(texts, rows[:, :-1].tolist(), self.model)
        if kind == "nan":
            rows[0, 0] = np.nan
            return 200, self._payload(texts, [[float(v) for v in r] for r in rows], self.model)
        if kind == "wrong_model":
            return 200, self._payload(texts, rows.tolist(), "someone/else")
        if kind == "short":
            return 200, self._payload(texts[:-1], rows[:-1].tolist(), self.model)
        raise ValueError(kind)

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    model = {
                        "id": stub.model,
                        "object": "model",
                        "created": 0,
                        "owned_by": "stub",
                        "root": "/weights/stub",
                        "max_model_len": stub.max_model_len,
                    }
                    self._send(200, {"object": "list", "data": [model]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = stub._answer(body)
                if isinstance(action, tuple) and action[0] == "stall":
                    time.sleep(action[1])
                    return
                if isinstance(action, str):
                    action = stub._bad(action, body["input"])
                if isinstance(action, int):
                    action = (action, {"error": {"message": f"stub failure {action}"}})
                self._send(*action)

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()  # NaN is written as NaN, as Python servers do
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
