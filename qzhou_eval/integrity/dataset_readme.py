"""A dataset folder's ``README.md`` YAML ``configs:`` (the Hugging Face layout), every listed path confined to the folder.

Read by the evaluation's offline task data and by training's retrieval folders alike.
"""

from __future__ import annotations

from pathlib import Path

from qzhou_eval.errors import DataDirError
from qzhou_eval.integrity.files import parse_yaml


def readme_configs(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """README.md's YAML ``configs:`` as {config: {split: [files]}} (globs expanded)."""
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace")
    parts = text.split("---", 2)
    header = (
        parse_yaml(parts[1], f"{readme} (its YAML header)", DataDirError)
        if text.startswith("---") and len(parts) == 3
        else None
    )
    configs = header.get("configs") if isinstance(header, dict) else None
    if not isinstance(configs, list) or not configs:
        raise DataDirError(f"{readme} has no YAML 'configs:' list; expected the layout in mteb-data/README.md")
    out: dict[str, dict[str, list[Path]]] = {}
    for config in configs:
        if not isinstance(config, dict) or "data_files" not in config:
            raise DataDirError(f"{readme}: a configs entry lacks data_files ({config!r})")
        name = str(config.get("config_name", "default"))
        files = config["data_files"]
        if isinstance(files, (str, list)) and not (isinstance(files, list) and files and isinstance(files[0], dict)):
            files = [{"split": "train", "path": files}]
        elif isinstance(files, dict):
            files = [{"split": split, "path": paths} for split, paths in files.items()]
        splits: dict[str, list[Path]] = {}
        for item in files:
            patterns = item.get("path") if isinstance(item, dict) else None
            if patterns is None:
                raise DataDirError(f"{readme}: config {name!r} has a data_files entry without a path ({item!r})")
            for pattern in [patterns] if isinstance(patterns, str) else patterns:
                _confined(readme, folder, pattern)
                matched = sorted(folder.glob(pattern)) if any(c in pattern for c in "*?[") else [folder / pattern]
                if any(not p.resolve().is_relative_to(folder.resolve()) for p in matched):
                    raise DataDirError(
                        f"{readme}: {pattern!r} matches a link that leaves the task folder {folder}; "
                        "copy the file into the folder instead of linking to it"
                    )
                if not matched or not all(p.is_file() for p in matched):
                    raise DataDirError(
                        f"{folder / pattern} (config {name!r}, split {item.get('split')!r}, listed in "
                        f"{readme.name}) does not exist; copy the task folder again"
                    )
                splits.setdefault(str(item.get("split", "train")), []).extend(matched)
        out[name] = splits
    return out


def _confined(readme: Path, folder: Path, pattern: object) -> None:
    """A data path must name a file inside the task folder: no absolute path, no '..', no link out of it.

    Raises:
        DataDirError: naming the README, the path and the fix.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise DataDirError(f"{readme}: a data_files path is {pattern!r}, not a file name; list the split files by name")
    pure = Path(pattern)
    resolved_root = folder.resolve()
    inside = not pure.is_absolute() and ".." not in pure.parts
    if inside and not any(c in pattern for c in "*?["):
        inside = (folder / pattern).resolve().is_relative_to(resolved_root)
    if not inside:
        raise DataDirError(
            f"{readme}: data path {pattern!r} leaves the task folder {folder}; a task's files must sit inside its "
            "folder (copy them there and list them by relative name)"
        )
