"""submit RUN --out DIR: the results-repository layout, validated by loading it back with mteb."""

from __future__ import annotations

import json
from pathlib import Path

from qzhou_eval._atomic import atomic_write_text
from qzhou_eval.benchmarks import bundled_task_names
from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.integrity.outputs import check_folder_target, same_file
from qzhou_eval.report.regression import detect_benchmark
from qzhou_eval.results.runs import load_run_dir


class SubmissionError(QZhouEvalError):
    """A run that cannot be submitted as it is."""


def submit(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    benchmark: str | None = None,
    allow_partial: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``<out>/results/<org__model>/<revision>/`` and return that folder.

    Raises:
        SubmissionError: several models or revisions, no model_meta.json, missing suite tasks (unless
        ``allow_partial``), task files from mixed mteb versions, existing files (unless ``overwrite``),
        or a layout mteb cannot load back.
    """
    models = load_run_dir(run_dir)
    if len(models) != 1:
        raise SubmissionError(f"{run_dir} holds {len(models)} models; submit one <org__model> folder at a time")
    model = models[0]
    revisions = {tf.path.parent for tf in model.tasks.values()}
    if len(revisions) != 1:
        raise SubmissionError(f"{model.name} has results in {len(revisions)} revision folders; point at one of them")
    source = revisions.pop()
    meta_file = source / "model_meta.json"
    if not meta_file.is_file():
        raise SubmissionError(f"{source} has no model_meta.json; the results repository requires it")
    _check_model_meta(meta_file)
    benchmark = benchmark or detect_benchmark(model)
    missing = sorted(set(bundled_task_names(benchmark)) - set(model.tasks))
    if missing and not allow_partial:
        raise SubmissionError(
            f"the run lacks {len(missing)} task(s) of {benchmark}: {missing}; finish them or pass --allow-partial"
        )
    versions = {tf.mteb_version for tf in model.tasks.values()}
    if len(versions) > 1:
        raise SubmissionError(
            f"task files were produced by mixed mteb versions {sorted(map(str, versions))}; re-run them with one version"
        )
    target = Path(out_dir) / "results" / source.parent.name / source.name
    if target.exists() and same_file(target, source):
        raise SubmissionError(f"--out {out_dir} would write the run's own folder {source}; choose another --out")
    check_folder_target(target, "--out")
    files = [tf.path for tf in model.tasks.values()] + [meta_file]
    clashes = [target / f.name for f in files if (target / f.name).exists()]
    if clashes and not overwrite:
        raise SubmissionError(
            f"{len(clashes)} file(s) already exist in {target} (e.g. {clashes[0].name}); pass --overwrite"
        )
    for f in files:
        atomic_write_text(target / f.name, f.read_text(encoding="utf-8"))
    _validate_with_mteb(Path(out_dir), model.name, sorted(model.tasks))
    return target


RESULTS_REPO = "https://github.com/embeddings-benchmark/results"


def next_commands(out_dir: str | Path, model_name: str) -> list[str]:
    """What to run where the network is: mteb's own submission command (its ``--output-folder`` is ``out_dir``,
    whose ``results/`` holds the model), or the same by hand with git."""
    out = Path(out_dir)
    folder = model_name.replace("/", "__")
    return [
        f"mteb submit-results --output-folder {out} --models {model_name}",
        f"mteb submit-results --output-folder {out} --models {model_name} --create-pr",
        f"git clone {RESULTS_REPO} && cp -r {out / 'results' / folder} results/results/ && cd results && "
        f"git checkout -b add-{folder} && git add results/{folder} && git commit -m 'Add results for {model_name}'",
    ]


def _check_model_meta(path: Path) -> None:
    """model_meta.json must be a JSON object naming the model, before anything is written.

    (mteb's loader validates the rest when the submission is read back; older mteb versions wrote
    fields in shapes today's ModelMeta rejects, so a stricter check here would refuse real files.)
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError("it is not a JSON object with a 'name'")
    except (OSError, ValueError) as exc:
        raise SubmissionError(
            f"{path} is not a valid mteb model_meta.json ({str(exc)[:300]}); re-run any one task "
            "of the run with qzhou-eval (it rewrites the file) or restore it"
        ) from None


def _validate_with_mteb(out_dir: Path, model_name: str, tasks: list[str]) -> None:
    import mteb

    cache = mteb.ResultCache(out_dir)
    loaded = cache.load_results(models=[model_name], tasks=tasks, require_model_meta=True, include_remote=False)
    found = {tr.task_name for mr in loaded.model_results for tr in mr.task_results}
    if set(tasks) - found:
        raise SubmissionError(f"mteb could not load back {sorted(set(tasks) - found)} from {out_dir}")
