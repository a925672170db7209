"""The results layout mteb reads, ``<cache>/results/<org__model>/<revision>/<Task>.json``: the one owner of
how a model's name becomes a folder name and back (runs, records, evidence, reports and submissions ask here)."""

from __future__ import annotations

from pathlib import Path

RESULTS_DIRNAME = "results"  # mteb.ResultCache reads <cache>/results/<org__model>/<revision>/
# Revision folders of results with no model revision: mteb's own name for it, and an older spelling.
NO_REVISION = ("external", "no_revision_available")


def model_folder(model_name: str) -> str:
    """``org/name`` -> ``org__name`` (spaces become ``_``), as mteb names a model's results folder."""
    return model_name.replace("/", "__").replace(" ", "_")


def model_name_of(folder: str) -> str | None:
    """``org__name`` -> ``org/name`` (split at the first ``__``, as mteb reads its folders; an org ending in
    ``_`` is therefore read back wrongly, by mteb too); None for a folder that is not a model's (no ``__``)."""
    if "__" not in folder:
        return None
    org, name = folder.split("__", 1)
    return f"{org}/{name}"


def results_dir_for(output_dir: Path, model_name: str, revision: str) -> Path:
    """mteb's cache layout, so ``mteb.ResultCache(output_dir)`` reads a run as it is:
    ``<output_dir>/results/<org__model>/<revision>/``. A run folder made before that layout
    (``<output_dir>/<org__model>/<revision>/``) keeps resuming where its results are."""
    folder = model_folder(model_name)
    legacy = Path(output_dir) / folder / revision
    if legacy.is_dir():
        return legacy
    return Path(output_dir) / RESULTS_DIRNAME / folder / revision
