"""Locate the protocol data shipped with the project (task_instructions/, reproducibility/presets/).

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
}


def data_dir(kind: str) -> Path:
    """The folder holding ``kind`` ('task_instructions' or 'presets')."""
    packaged, in_repo = _LOCATIONS[kind]
    for candidate in (_PACKAGE / packaged, _REPO_ROOT / in_repo):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"qzhou-eval's {kind} folder is missing; reinstall the package")
