"""Atomic file writes: a kill or Ctrl-C never leaves a half-written file (write temp, fsync, rename)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".qzhou-tmp"
_HOST = socket.gethostname().replace(".", "_")


def temp_prefix(name: str) -> str:
    """``.<name>.<host>-<pid>.``: a temp file names its owner, so cleanup can leave live writers alone."""
    return f".{name}.{_HOST}-{os.getpid()}."


def owner_is_gone(tmp: Path, max_age_s: float = 86400.0) -> bool:
    """True when the process that made ``tmp`` is dead (same host), or the file is older than a day."""
    import time

    parts = tmp.name.removesuffix(TMP_SUFFIX).split(".")
    host, _, pid = (parts[-2] if len(parts) >= 3 else "").rpartition("-")
    try:
        age = time.time() - tmp.stat().st_mtime
    except OSError:
        return False
    if host == _HOST and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return age > max_age_s


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
