"""Where a checkpoint lives (local folder or hub id) and how to read its small files."""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from qzhou_eval.errors import ModelFormatError, ModelNotFoundError
from qzhou_eval.integrity.content import tree_digest

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Files that never change what the model computes: documentation, and weights for other runtimes.
_NOT_IDENTITY_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".onnx", ".h5", ".msgpack", ".ot", ".gguf")
_NOT_IDENTITY_DIRS = ("onnx", "openvino", "__pycache__")
_NOT_IDENTITY_NAMES = ("LICENSE", "LICENSE.txt", "NOTICE", ".gitattributes")
# What a tokenizer is made of: one of these must sit beside tokenizer_config.json (or be tokenizer.json).
_TOKENIZER_VOCABS = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "qwen.tiktoken",
    "tiktoken.model",
)


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

    def check_weights(self, tokenizer_subfolder: str = "") -> None:
        """A local folder must hold complete weight files and a tokenizer; an interrupted download often lacks them.

        Safetensors files are checked structurally (header parses, size equals header + data), so a
        truncated or damaged file fails here, before any task data is read.

        Raises:
            ModelFormatError: naming the folder or file and what is missing or wrong.
        """
        if self.local_path is None:
            return
        files = [p for p in self.local_path.rglob("*") if p.is_file()]
        weights = [p for p in files if p.name.endswith(_WEIGHT_SUFFIXES)]
        if not weights:
            raise ModelFormatError(
                f"{self.local_path} holds no weight files ({', '.join('*' + s for s in _WEIGHT_SUFFIXES)}); the "
                "download or copy is incomplete — fetch the checkpoint again"
            )
        for path in weights:
            if path.suffix == ".safetensors":
                check_safetensors(path)
            elif path.stat().st_size == 0:
                raise ModelFormatError(f"{path} is empty; the download or copy is incomplete — fetch it again")
        folder = self.local_path / tokenizer_subfolder if tokenizer_subfolder else self.local_path
        if not any((folder / name).is_file() for name in _TOKENIZER_VOCABS):
            raise ModelFormatError(
                f"{folder} holds no tokenizer files (one of {', '.join(_TOKENIZER_VOCABS)}); without them every text "
                "would be read as unknown tokens — copy the checkpoint's tokenizer files into the folder"
            )

    def identity_files(self) -> list[Path]:
        """Every file of a local checkpoint that can change its output (weights, configs, tokenizer, ST modules, code)."""
        assert self.local_path is not None
        out = []
        for path in self.local_path.rglob("*"):
            rel = path.relative_to(self.local_path)
            if any(part.startswith(".") or part in _NOT_IDENTITY_DIRS for part in rel.parts[:-1]):
                continue
            if rel.name.startswith(".") or rel.name in _NOT_IDENTITY_NAMES or rel.name.endswith(_NOT_IDENTITY_SUFFIXES):
                continue
            if path.is_file():
                out.append(path)
        return out

    @cached_property
    def content_digest(self) -> str:
        """Full digest of every identity file's bytes (local), or the hub revision; computed once per object."""
        if self.local_path is None:
            return f"hub:{self.name_or_path}@{self.revision or 'main'}"
        try:
            return tree_digest(self.local_path, self.identity_files())
        except OSError as exc:
            raise ModelFormatError(f"{self.local_path}: a checkpoint file cannot be read ({exc})") from None

    def fingerprint(self) -> str:
        """A short, stable identity of the checkpoint (its results' revision folder): the hub revision, or
        the first 16 hex digits of :attr:`content_digest`, which covers every byte of every identity file."""
        if self.local_path is None:
            return self.revision or "main"
        return self.content_digest.split(":")[-1][:16]


def is_local_folder(model_name_or_path: str | os.PathLike | None) -> bool:
    """Whether ``model_name_or_path`` names an existing folder (for a served model: are local weights given?)."""
    return model_name_or_path is not None and Path(os.fspath(model_name_or_path)).expanduser().is_dir()


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


def check_safetensors(path: Path) -> None:
    """The header must parse and the file must be exactly header + the tensors it declares.

    Raises:
        ModelFormatError: truncated, padded or damaged, naming the file.
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > min(size - 8, 100 << 20):
                raise ValueError(f"header length {header_len} exceeds the file")
            header = json.loads(fh.read(header_len).decode("utf-8"))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ModelFormatError(
            f"{path} is not a readable safetensors file ({exc}); fetch the checkpoint again"
        ) from None
    if 8 + header_len + max(ends, default=0) != size:
        raise ModelFormatError(
            f"{path} is {size} bytes but its header declares {8 + header_len + max(ends, default=0)}: truncated or "
            "damaged; fetch the checkpoint again"
        )
