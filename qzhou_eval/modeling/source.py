"""Where a checkpoint lives (local folder or hub id) and how to read its small files."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval.errors import ModelFormatError, ModelNotFoundError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ModelSource:
    """A resolved checkpoint location: a local folder, or a hub id (fetched lazily, file by file)."""

    name_or_path: str
    local_path: Path | None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @property
    def default_model_name(self) -> str:
        """``org/name`` results are filed under when none is given: the hub id, or ``local/<folder>``."""
        return self.name_or_path if self.local_path is None else f"local/{self.local_path.name}"

    def read_json(self, relpath: str) -> dict[str, Any] | list[Any] | None:
        """Parse ``relpath`` inside the checkpoint, or None when the file does not exist."""
        path = self._file(relpath)
        if path is None:
            return None
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:  # bad JSON or not UTF-8
            raise ModelFormatError(f"{path} is not valid JSON ({exc}); re-download the checkpoint") from None

    def _file(self, relpath: str) -> Path | None:
        if self.local_path is not None:
            path = self.local_path / relpath
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import RemoteEntryNotFoundError

        try:
            return Path(hf_hub_download(self.name_or_path, relpath, revision=self.revision))
        except RemoteEntryNotFoundError:  # the repo answered: no such file (offline misses are not this)
            return None

    def check_weights(self) -> None:
        """A local folder must hold weight files; an interrupted download often lacks them.

        Raises:
            ModelFormatError: naming the folder and the files looked for.
        """
        if self.local_path is None:
            return
        if not any(p.name.endswith(_WEIGHT_SUFFIXES) for p in self.local_path.rglob("*") if p.is_file()):
            raise ModelFormatError(
                f"{self.local_path} holds no weight files ({', '.join('*' + s for s in _WEIGHT_SUFFIXES)}); the "
                "download or copy is incomplete — fetch the checkpoint again"
            )

    def fingerprint(self) -> str:
        """A short, stable identity of the weights: the hub revision, or a hash of the local files.

        Local folders hash each weight file's name, size and first MiB, which tells checkpoints
        apart without reading gigabytes.
        """
        if self.local_path is None:
            return self.revision or "main"
        digest = hashlib.sha256()
        for path in sorted(p for p in self.local_path.rglob("*") if p.is_file()):
            rel = path.relative_to(self.local_path).as_posix()
            if rel.endswith(_WEIGHT_SUFFIXES) or rel.endswith(".json"):
                digest.update(rel.encode())
                digest.update(str(path.stat().st_size).encode())
                with path.open("rb") as fh:
                    digest.update(fh.read(1 << 20))
        return digest.hexdigest()[:16]


def resolve_source(model_name_or_path: str | os.PathLike, revision: str | None = None) -> ModelSource:
    """Resolve a local folder or a hub id; a clear error says which one it looked like.

    Raises:
        ModelNotFoundError: the path does not exist locally and is not a fetchable hub id.
    """
    text = os.fspath(model_name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {text!r} is a file; pass the checkpoint folder that holds it")
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelNotFoundError(
                f"local folder {str(path)!r} holds neither config.json nor modules.json; "
                "pass a transformers or sentence-transformers checkpoint folder"
            )
        return ModelSource(text, path.resolve(), revision)
    if not _HUB_ID.match(text):
        raise ModelNotFoundError(
            f"model path {text!r} looks like a local path but does not exist; check the path "
            "(a hub id has the form 'org/name')"
        )
    source = ModelSource(text, None, revision)
    try:
        found = source.read_json("config.json") or source.read_json("modules.json")
    except Exception as exc:  # hub errors come in many types; all mean "not reachable"
        raise ModelNotFoundError(
            f"{text!r} is not a local folder, and as a hub id it could not be fetched ({type(exc).__name__}: "
            f"{exc}); download it on a machine with network access and pass the local folder"
        ) from exc
    if found is None:
        raise ModelNotFoundError(f"hub repo {text!r} has no config.json or modules.json; is it a model repo?")
    return source
