"""Read run folders (what the runners write) in any of three shapes: results root, model folder, revision folder."""

from __future__ import annotations

from pathlib import Path

from qzhou_eval.errors import ResultFileError
from qzhou_eval.results.layout import model_name_of
from qzhou_eval.results.load import ModelResults, load_model_results, model_folders

_NOT_TASKS = ("model_meta.json",)


def _task_jsons(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.json") if p.name not in _NOT_TASKS and not p.name.startswith("qzhou-run-")]


def load_run_dir(path: str | Path, tasks: list[str] | None = None) -> list[ModelResults]:
    """Every model found in ``path``.

    Raises:
        ResultFileError: a folder that is not in mteb's layout, naming the expected shape.
    """
    path = Path(path)
    if not path.is_dir():
        raise ResultFileError(f"run folder {str(path)!r} does not exist")
    if _task_jsons(path):  # a revision folder: <org__model>/<revision>/
        model_dir = path.parent
        model_name = model_name_of(model_dir.name)
        if model_name is None:
            raise ResultFileError(
                f"{path} holds task files, but its parent {model_dir.name!r} is not an <org__model> folder; "
                "expected <dir>/<org__model>/<revision>/<Task>.json"
            )
        only_this = load_model_results(model_dir, model_name, tasks)
        only_this.tasks = {t: f for t, f in only_this.tasks.items() if f.path.parent == path}
        return [only_this]
    if model_name_of(path.name) and any(_task_jsons(p) for p in path.iterdir() if p.is_dir()):  # a model folder
        return [load_model_results(path, model_name_of(path.name), tasks)]
    folders = model_folders(path)
    if not folders:
        raise ResultFileError(
            f"{path} is not in mteb's results layout: expected <dir>/<org__model>/<revision>/<Task>.json"
        )
    return [load_model_results(folder, name, tasks) for name, folder in folders.items()]
