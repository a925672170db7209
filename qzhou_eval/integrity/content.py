"""Identity by content: a file's digest covers every byte, and is memoised by a stamp an edit cannot keep.

A streamed BLAKE3 digest (``blake3:<hex>``) of the whole file, multi-threaded (7 GB/s from memory on
2 cores here, 4x sha256: ``bench/hashing.py``). Re-hashing an unchanged 15 GB checkpoint on every run
would cost seconds, so digests are memoised per absolute path under a *stamp* of
(device, inode, size, mtime_ns, ctime_ns). ``touch -r`` restores the mtime but not the ctime, which
the kernel sets on every write and metadata change; a copy or a replaced file has a new inode. So
any edit changes the stamp and is hashed again. Each memo entry carries its own checksum: a memo
file damaged or edited by hand is never believed, only recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import blake3

from qzhou_eval._atomic import atomic_write_json

PREFIX = "blake3:"
_FORMAT_VERSION = 2
_MAX_ENTRIES = 50_000  # oldest dropped first; a dropped entry only costs one re-hash
_THREADED_FROM = 64 << 20


def stat_stamp(path: Path) -> list[int]:
    """What the memo keys on: changes whenever the file's bytes (or its identity on disk) can have changed."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def hash_file(path: Path) -> str:
    """``blake3:<hex>`` of every byte of ``path``, streamed; raises OSError if it changes while being read.

    Files of 64 MiB and more are hashed on all cores (BLAKE3's thread pool); smaller ones on the calling
    thread, so a process that only reads configs and small models starts no extra threads.
    """
    before = stat_stamp(path)
    threads = blake3.blake3.AUTO if before[2] >= _THREADED_FROM else 1
    hasher = blake3.blake3(max_threads=threads)
    if before[2]:
        hasher.update_mmap(str(path))
    if stat_stamp(path) != before:
        raise OSError(f"{path} changed while it was being hashed; run again once it is no longer being written")
    return PREFIX + hasher.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (what a task record names its result and evidence files by)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_bytes(data: bytes) -> str:
    return PREFIX + blake3.blake3(data).hexdigest()


def _entry_check(key: str, entry: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in entry.items() if k != "check"}, sort_keys=True)
    return blake3.blake3(f"{key}\0{body}".encode()).hexdigest()[:32]


def _memo_path(name: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "qzhou-eval" / f"{name}.json"


class ContentMemo:
    """Per-file facts (the digest, plus whatever a caller derives from the bytes), valid while the stamp holds."""

    def __init__(self, name: str = "content-digests") -> None:
        self.path = _memo_path(name)
        self._lock = threading.Lock()
        self.changed = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data["files"] if data.get("version") == _FORMAT_VERSION else {}
            self.entries = {
                k: v for k, v in entries.items() if isinstance(v, dict) and v.get("check") == _entry_check(k, v)
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}

    def facts(self, path: Path, derive: Callable[[Path], dict[str, Any]] | None = None) -> dict[str, Any]:
        """``{"digest": ..., **derive(path)}`` for ``path``, from the memo when its stamp is unchanged.

        ``derive`` computes JSON-able facts from the file (columns, a format check); it runs whenever
        the digest is computed, so a memoised fact is always about the same bytes as the digest.
        """
        key = str(Path(path).resolve())
        stamp = stat_stamp(path)
        with self._lock:
            entry = self.entries.get(key)
        if entry is not None and entry.get("stamp") == stamp and (derive is None or "derived" in entry):
            return {"digest": entry["digest"], **(entry.get("derived") or {})}
        derived = derive(path) if derive is not None else None
        digest = hash_file(path)
        if stat_stamp(path) != stamp:
            raise OSError(f"{path} changed while it was being read; run again once it is no longer being written")
        entry = {"stamp": stamp, "digest": digest}
        if derived is not None:
            entry["derived"] = derived
        entry["check"] = _entry_check(key, entry)
        with self._lock:
            self.entries.pop(key, None)
            self.entries[key] = entry
            self.changed = True
        return {"digest": digest, **(derived or {})}

    def digest(self, path: Path) -> str:
        return self.facts(path)["digest"]

    def save(self) -> None:
        """Write the memo (atomically); a memo that cannot be written only costs time on the next run."""
        with self._lock:
            if not self.changed:
                return
            keep = dict(list(self.entries.items())[-_MAX_ENTRIES:])
            self.changed = False
        with contextlib.suppress(OSError):
            atomic_write_json(self.path, {"version": _FORMAT_VERSION, "files": keep})


def tree_digest(root: Path, files: Iterable[Path], memo: ContentMemo | None = None) -> str:
    """One digest over the relative names and full contents of ``files`` under ``root`` (order-independent)."""
    own = memo is None
    memo = memo or ContentMemo()
    try:
        hasher = blake3.blake3()
        for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            hasher.update(f"{path.relative_to(root).as_posix()}\0{memo.digest(path)}\0".encode())
        return PREFIX + hasher.hexdigest()
    finally:
        if own:
            memo.save()
