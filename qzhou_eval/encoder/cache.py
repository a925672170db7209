"""Content-addressed embedding cache in SQLite (WAL): a killed run resumes without re-encoding.

A key hashes the model identity, every option that changes an embedding, and the exact model input
(prefix, template and text). Each encoded batch is committed on its own, so a SIGKILL loses at most
the batch in flight and never leaves the file unreadable (SQLite's journal guarantees that).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500


def model_key(identity: dict) -> bytes:
    """Digest of the model identity + embedding options; every text key starts from it."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).digest()


class EmbeddingCache:
    """Maps (model key, model input) -> float32 vector, shared across tasks and runs.

    Example:
        >>> cache = EmbeddingCache(tmp / "emb.sqlite", model_key({"model": "x"}))  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, model_digest: bytes) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._model_digest = model_digest
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def keys(self, inputs: Sequence[str]) -> list[bytes]:
        return [hashlib.sha256(self._model_digest + text.encode("utf-8")).digest() for text in inputs]

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, dim, blob in self._db.execute(f"SELECT key, dim, vec FROM embeddings WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one batch and commit it (the unit a kill can lose)."""
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings (key, dim, vec) VALUES (?, ?, ?)", rows)

    def record(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def close(self) -> None:
        self._db.close()
