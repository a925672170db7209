"""Outputs never overwrite inputs: one rule for every command that writes a file or folder.

An output that is one of the command's inputs (the same file, also through a link or another path)
is refused; an existing output is refused unless the user passes the command's overwrite flag; a
path whose place is taken by something that is not a file (a folder, a socket) is refused before any
work starts, so a long job never fails at its very end. Writing itself is atomic (``_atomic``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from qzhou_eval.errors import InvalidOptionError

_FOLDER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_revision_name(revision: str | None, flag: str) -> str | None:
    """A revision names a results folder: one plain path component (a commit, a tag, a fingerprint).

    Raises:
        InvalidOptionError: a value with a slash, a leading dot, spaces or other characters.
    """
    if revision is not None and not _FOLDER_NAME.match(revision):
        raise InvalidOptionError(
            f"{flag} {revision!r} is not a revision: use the hub commit (40 hex digits), a tag or a plain name of "
            "letters, digits, '_', '.' and '-' (it names a results folder)"
        )
    return revision


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are the same file on disk (links and other spellings included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve()


def check_file_target(path: Path, what: str) -> None:
    """``path`` can become a regular file: it is one, or absent with no non-folder in its parents' places.

    Raises:
        InvalidOptionError: naming the path, what is in the way, and the fix.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if path.is_dir():
            raise InvalidOptionError(
                f"{what} {path} is a folder, not a file; move the folder away or choose another path"
            )
        if not path.is_file():
            raise InvalidOptionError(
                f"{what} {path} exists and is not a regular file; remove it or choose another path"
            )
        return
    _check_parents(path, what)


def check_folder_target(path: Path, what: str) -> None:
    """``path`` is a folder or can become one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InvalidOptionError(f"{what} {path} is a file, not a folder; move it away or choose another path")
    _check_parents(path, what)


def _check_parents(path: Path, what: str) -> None:
    """The nearest existing parent of ``path`` is a folder (a file there makes ``path`` unwritable)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidOptionError(
                    f"{what} {path} is not writable: {parent} is a file, not a folder; move it away or choose another path"
                )
            return


def check_output(
    out: Path | str,
    *,
    inputs: Iterable[Path | str | None] = (),
    overwrite: bool = False,
    flag: str = "--out",
    overwrite_flag: str = "--overwrite",
) -> Path:
    """Refuse an output that is an input, or that exists without ``overwrite``; return it as a Path.

    Raises:
        InvalidOptionError: naming the output, the input it would destroy, or the flag that allows replacing it.
    """
    out = Path(out)
    for source in inputs:
        if source is not None and same_file(out, Path(source)):
            raise InvalidOptionError(
                f"{flag} {out} is also an input ({source}); writing it would destroy what is being read — choose "
                "another output path"
            )
    check_file_target(out, flag)
    if out.exists() and not overwrite:
        raise InvalidOptionError(f"{flag} {out} exists; pass {overwrite_flag} to replace it, or choose another path")
    return out
