"""Reading the user's own files: text must be UTF-8, YAML must be unambiguous, and errors name the file.

One strict YAML loader for every config the harness reads (training, synthesis, instruction files,
task READMEs): a key given twice is an error (PyYAML keeps the last one silently), and a file that is
not UTF-8 or does not parse is one line naming the file, its line and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qzhou_eval.errors import InvalidOptionError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a scalar, not {type(key).__name__}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} is given twice (first on line {seen[key] + 1}); keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping_base(node, deep=deep)


_StrictLoader.construct_mapping_base = yaml.SafeLoader.construct_mapping  # type: ignore[attr-defined]
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: Path | str, what: str = "file", error: type[Exception] = InvalidOptionError) -> str:
    """The file's text as UTF-8.

    Raises:
        ``error``: missing, unreadable, a folder, or not UTF-8 (naming the byte offset).
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; pass the file") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def parse_yaml(text: str, where: str, error: type[Exception] = InvalidOptionError) -> Any:
    """Parse YAML strictly (duplicate keys refused).

    Raises:
        ``error``: naming ``where``, the line and the problem.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{where}:{line} malformed YAML ({problem}); fix the file") from None


def load_yaml(path: Path | str, what: str = "config", error: type[Exception] = InvalidOptionError) -> Any:
    """:func:`read_text` then :func:`parse_yaml`."""
    return parse_yaml(read_text(path, what, error), f"{what} {path}", error)
