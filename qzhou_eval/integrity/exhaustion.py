"""Running out of disk, file size or quota is not damage: nothing is moved aside, the run stops and says so.

One owner of "is this error resource exhaustion?", asked by the embedding cache (SQLite reports it as
SQLITE_FULL or an I/O error whose cause is ENOSPC/EFBIG/EDQUOT) and by the CLI's error contract.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from qzhou_eval.errors import ResourceExhaustedError

EXHAUSTION_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# SQLite's own codes for "could not write": SQLITE_FULL, and SQLITE_IOERR (an extended code whose low byte is 10).
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
# The codes that mean the file itself is damaged: only these may set a database aside.
_SQLITE_DAMAGE = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_exhaustion(exc: BaseException) -> bool:
    """True for ENOSPC / EFBIG / EDQUOT anywhere in the exception's chain, and for SQLite's 'disk is full'."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ResourceExhaustedError):
            return True
        if isinstance(exc, OSError) and exc.errno in EXHAUSTION_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def sqlite_damage(exc: sqlite3.Error) -> bool:
    """Only a corrupt or not-a-database file is damage; I/O errors, locks and full disks are not."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # very old SQLite bindings: fall back to the message
        return "malformed" in str(exc) or "not a database" in str(exc)
    return code & 0xFF in _SQLITE_DAMAGE


def sqlite_io_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding ``path`` (its nearest existing parent), or None if unknown."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def exhausted(path: Path | str, exc: BaseException) -> ResourceExhaustedError:
    """The one message: which path, how much is free there, and that a rerun continues."""
    free = free_bytes(Path(path))
    parts = [f"could not write {path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"]
    if free is not None:
        parts.append(f"{free / 1e6:.1f} MB free there")
    return ResourceExhaustedError(
        "; ".join(parts) + " (out of disk space, file-size limit or quota); everything written before is intact — "
        "free space or raise the limit, then rerun the same command to continue"
    )
