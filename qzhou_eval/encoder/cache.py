"""Content-addressed embedding cache in SQLite (WAL) that verifies itself: never a wrong vector.

A key hashes the model identity, every option that changes an embedding, and the exact model input
(prefix, template and text). Each stored vector carries a BLAKE2b checksum of (key, dim, bytes),
checked on every read: a damaged entry counts as a miss, is re-encoded and replaced. A file SQLite
cannot read is moved aside (with a warning) and a fresh cache takes its place. Each encoded batch
is committed on its own, so a SIGKILL loses at most the batch in flight.

A vector is stored at the precision it holds: one whose float32 values are all exactly bfloat16 (a bf16
model's output normalised in bf16, QZhou-Embedding's way) keeps only their upper 16 bits, half the bytes;
any other keeps all 32. The blob's length says which (2 or 4 bytes a value, under the checksum), and
widening bf16 back to float32 is exact, so a read returns the very float32 values that were written;
float32 caches written before this layout read as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import CacheIOError
from qzhou_eval.integrity.exhaustion import exhausted, free_bytes, is_exhaustion, sqlite_damage, sqlite_io_failure

logger = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500
# SQLite page of a new cache file (an existing file keeps its own). A row is a vector of 2 or 4 KB per 1,000
# dims, which packs into 4 KB pages with ~1 KB lost per row; 64 KB pages pack bf16 rows of 3,584 dims with
# ~0.2 KB lost, and write 1.2x (bf16) to 1.5x (float32) faster (bench/cache_layout.py prints both).
PAGE_SIZE = 65536
_ROW_FIELDS = 80  # key, dim, checksum, session, record header and cell pointer of one row
_KEY_INDEX = 46  # the primary-key index's entry for one row


def stored_row_bytes(dim: int, value_bytes: int) -> float:
    """Disk bytes one cached vector takes in a new cache: SQLite packs whole rows into a page, so a page holds
    ``PAGE_SIZE // row`` of them (3,584 bf16 values: 9 rows a page, 7,328 B a row; bench/cache_layout.py)."""
    row = dim * value_bytes + _ROW_FIELDS
    if row > PAGE_SIZE:  # overflow pages, the last one part-filled
        return -(-row // PAGE_SIZE) * PAGE_SIZE + _KEY_INDEX
    return PAGE_SIZE / (PAGE_SIZE // row) + _KEY_INDEX


TABLE = "embeddings_v2"  # v1 rows had no checksum; they are not trusted and not read


def model_key(identity: dict) -> bytes:
    """Digest of the model identity + embedding options; every text key starts from it."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).digest()


def checksum(key: bytes, dim: int, blob: bytes) -> bytes:
    return hashlib.blake2b(key + dim.to_bytes(4, "little") + blob, digest_size=8).digest()


class EmbeddingCache:
    """Maps (model key, model input) -> float32 vector (stored as bf16 where exact), shared across tasks, runs
    and shard processes.

    Example:
        >>> cache = EmbeddingCache(tmp / "emb.sqlite", model_key({"model": "x"}))  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, model_digest: bytes) -> None:
        self.path = Path(path)
        self._model_digest = model_digest
        self._session = uuid.uuid4().hex[:16]
        if self.path.exists() and not self.path.is_file():
            from qzhou_eval.errors import InvalidOptionError

            raise InvalidOptionError(f"embedding cache {self.path} is not a file; pass another --cache_dir or 'none'")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _patient(self._open)
        except sqlite3.DatabaseError as exc:
            self._db = None
            self._recover(exc)

    def _open(self) -> sqlite3.Connection:
        # The encoder stores each batch from its results thread, never while it reads in its own.
        db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        try:
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL and the first table: a no-op on an existing file
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(key BLOB PRIMARY KEY, dim INTEGER, vec BLOB, checksum BLOB, session TEXT)"
            )
            db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {TABLE} LIMIT 1)").fetchone()
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _move_aside(self, exc: Exception) -> None:
        """An unreadable cache file is kept for inspection, never deleted, and never read again."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.unreadable-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{target}{suffix}"))
        logger.warning(
            "embedding cache %s is unreadable (%s); moved to %s, starting an empty cache "
            "(its embeddings are recomputed)",
            self.path,
            exc,
            target,
        )

    def keys(self, inputs: Sequence[str]) -> list[bytes]:
        return [hashlib.sha256(self._model_digest + text.encode("utf-8")).digest() for text in inputs]

    def get_many(self, keys: Sequence[bytes], stats: EncodeStats) -> dict[bytes, np.ndarray]:
        """Verified vectors for the keys found; damaged entries are counted in ``stats.repaired`` and left out."""
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, dim, vec, checksum, session FROM {TABLE} WHERE key IN ({marks})"
                rows = _patient(lambda q=query, c=chunk: self._db.execute(q, c).fetchall())
                for key, dim, blob, check, session in rows:
                    if not _is_intact(key, dim, blob, check):
                        stats.repaired += 1
                        continue
                    found[key] = widened(blob, dim)
                    if session == self._session:
                        stats.reused_this_run += 1
                    else:
                        stats.reused_earlier += 1
        except sqlite3.DatabaseError as exc:  # damage found mid-run: set the file aside, recompute what is missing
            self._recover(exc)
            return {}
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one batch and commit it (the unit a kill can lose)."""
        rows = []
        for key, vector in zip(keys, vectors):
            blob = narrowed(vector)
            dim = int(vector.shape[0])
            rows.append((key, dim, blob, checksum(key, dim, blob), self._session))

        def store() -> None:
            with self._db:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO {TABLE} (key, dim, vec, checksum, session) VALUES (?, ?, ?, ?, ?)", rows
                )

        try:
            _patient(store)
        except sqlite3.DatabaseError as exc:
            self._recover(exc)

    def _recover(self, exc: sqlite3.Error) -> None:
        """Damage: set the file aside and start afresh. Anything else (full disk, I/O error, lock): stop, touching nothing."""
        if self._db is not None:
            self._db.close()
        if sqlite_damage(exc) and not is_exhaustion(exc):
            self._move_aside(exc)
            self._db = self._open()
            return
        io_failure = sqlite_io_failure(exc)
        if is_exhaustion(exc) or (io_failure and _disk_is_full(self.path)):
            raise exhausted(self.path, exc) from exc
        if io_failure:
            raise CacheIOError(
                f"embedding cache {self.path} could not be read or written ({exc}); it was left as it is — "
                "check the disk, or pass --cache_dir none to run without the cache"
            ) from exc
        raise CacheIOError(
            f"embedding cache {self.path}: {exc}; it was left as it is — rerun once no other program holds it, "
            "or pass --cache_dir none"
        ) from exc

    def close(self) -> None:
        self._db.close()


def narrowed(vector: np.ndarray) -> bytes:
    """The stored bytes of a vector: bfloat16 (upper halves) when that loses nothing, else float32."""
    bits = np.ascontiguousarray(vector, dtype=np.float32).view(np.uint32)
    if not (bits & 0xFFFF).any():
        return (bits >> 16).astype("<u2").tobytes()
    return bits.astype("<u4").tobytes()


def widened(blob: bytes, dim: int) -> np.ndarray:
    """The float32 vector of a stored blob (2 bytes a value: bfloat16, widened exactly; 4: float32)."""
    if len(blob) == 2 * dim:
        return (np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(blob, dtype="<u4").view(np.float32)


def _patient(operation, patience_s: float = 60.0):
    """``operation()``, retried while SQLite answers "database is locked" at once: in WAL mode some lock
    conflicts between processes sharing the cache (shards, ranks) skip the busy timeout; they pass in moments."""
    deadline = time.monotonic() + patience_s
    wait = 0.05
    while True:
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(wait * (1 + random.random()))
            wait = min(2 * wait, 2.0)


def _disk_is_full(path: Path) -> bool:
    """SQLite reports a write that hit a limit as a plain I/O error: the free space, the process's file-size
    limit against the cache's files, and a probe write tell exhaustion apart from other failures."""
    import errno
    import resource
    import tempfile

    free = free_bytes(path.parent)
    if free is not None and free < (64 << 20):
        return True
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    sizes = [Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()]
    if limit != resource.RLIM_INFINITY and max(sizes, default=0) + (1 << 20) > limit:
        return True
    try:
        with tempfile.TemporaryFile(dir=path.parent) as fh:
            fh.write(b"\0" * (1 << 20))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    return False


def _is_intact(key: object, dim: object, blob: object, check: object) -> bool:
    return (
        isinstance(key, bytes)
        and isinstance(dim, int)
        and isinstance(blob, bytes)
        and isinstance(check, bytes)
        and dim > 0
        and len(blob) in (2 * dim, 4 * dim)
        and checksum(key, dim, blob) == check
    )
