"""A scriptable OpenAI-compatible ``/v1/embeddings`` server on 127.0.0.1, for the endpoint backend's failure paths.

Each text's vector is a fixed function of the text, so any answer can be checked. ``script(n, texts)``
decides what request ``n`` (0-based, over the server's life) gets: ``None`` (a good answer), an HTTP
status to fail with, ``("stall", seconds)``, or one of the bad answers ``"wrong_width"``, ``"nan"``,
``"wrong_model"``, ``"short"``. ``answered`` lists the texts of every good answer, in order.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from qzhou_eval.testing.loopback_server import Answer, LoopbackServer, Stall, error


def stub_vector(text: str, width: int) -> np.ndarray:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


class EmbeddingsStub(LoopbackServer):
    def __init__(self, model: str = "stub/model", width: int = 8, script=None, max_model_len: int = 512) -> None:
        self.model = model
        self.width = width
        self.script = script or (lambda n, texts: None)
        self.max_model_len = max_model_len
        self.requests = 0
        self.answered: list[list[str]] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()

    @property
    def answered_texts(self) -> set[str]:
        return {t for texts in self.answered for t in texts}

    def answer_get(self, path: str) -> Answer:
        if not path.rstrip("/").endswith("/models"):
            return error(404, "not found")
        model = {
            "id": self.model,
            "object": "model",
            "created": 0,
            "owned_by": "stub",
            "root": "/weights/stub",
            "max_model_len": self.max_model_len,
        }
        return 200, {"object": "list", "data": [model]}

    def answer_post(self, path: str, body: dict) -> Answer:
        texts = body["input"]
        with self._lock:
            n = self.requests
            self.requests += 1
            self.bodies.append(body)
        action = self.script(n, texts)
        if isinstance(action, tuple) and action[0] == "stall":
            return Stall(action[1])
        if isinstance(action, str):
            return self._bad(action, texts)
        if isinstance(action, int):
            return error(action, f"stub failure {action}")
        if action is not None:
            return action
        vectors = np.stack([stub_vector(t, self.width) for t in texts])
        with self._lock:
            self.answered.append(list(texts))
        return 200, self._payload(texts, vectors.tolist(), self.model)

    def _payload(self, texts, rows, model) -> dict:
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        return {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    def _bad(self, kind: str, texts: list[str]) -> Answer:
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
