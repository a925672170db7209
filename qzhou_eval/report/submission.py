"""submit RUN --out DIR: the results-repository layout, validated by loading it back with mteb."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzhou_eval._atomic import atomic_write_text
from qzhou_eval.benchmarks import bundled_task_names
from qzhou_eval.errors import SubmissionError
from qzhou_eval.integrity.outputs import check_folder_target, check_revision_name, same_file
from qzhou_eval.report.regression import detect_benchmark
from qzhou_eval.results.layout import RESULTS_DIRNAME, model_folder
from qzhou_eval.results.runs import load_run_dir
from qzhou_eval.run_manifest import MANIFEST_GLOB, ManifestModel, RunManifest

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# ModelMeta fields that describe the model rather than the run; unknown ones are listed for the user to fill.
DESCRIPTIVE_FIELDS = (
    "license",
    "release_date",
    "open_weights",
    "n_parameters",
    "languages",
    "public_training_code",
    "public_training_data",
    "training_datasets",
    "reference",
    "memory_usage_mb",
)


@dataclass
class SubmissionMeta:
    """The model_meta.json a submission carries, and where its revision and fields came from."""

    meta: dict[str, Any]
    revision_from: str  # --revision | the run's hub commit | the weights fingerprint
    from_registry: list[str] = field(default_factory=list)
    from_card: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def revision(self) -> str:
        return self.meta["revision"]


def submit(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    benchmark: str | None = None,
    allow_partial: bool = False,
    overwrite: bool = False,
    revision: str | None = None,
) -> tuple[Path, SubmissionMeta]:
    """Write ``<out>/results/<org__model>/<revision>/`` and return that folder and its model meta.

    The revision is ``revision``, else the hub commit the run recorded (a hub-cache snapshot folder names
    it), else the run's weights fingerprint, with a warning: the leaderboard files results under the hub
    commit. Descriptive ModelMeta fields the run left unknown come from mteb's registry for a model it
    knows, else from the checkpoint's model card; what stays unknown is listed in the returned meta.

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
    meta = submission_meta(model.name, source, _check_model_meta(meta_file), revision)
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
    target = Path(out_dir) / RESULTS_DIRNAME / source.parent.name / meta.revision
    if target.exists() and same_file(target, source):
        raise SubmissionError(f"--out {out_dir} would write the run's own folder {source}; choose another --out")
    check_folder_target(target, "--out")
    files = [tf.path for tf in model.tasks.values()]
    clashes = [target / f.name for f in [*files, meta_file] if (target / f.name).exists()]
    if clashes and not overwrite:
        raise SubmissionError(
            f"{len(clashes)} file(s) already exist in {target} (e.g. {clashes[0].name}); pass --overwrite"
        )
    for f in files:
        atomic_write_text(target / f.name, f.read_text(encoding="utf-8"))
    atomic_write_text(target / "model_meta.json", json.dumps(meta.meta, indent=2, ensure_ascii=False, default=str))
    _validate_with_mteb(Path(out_dir), model.name, sorted(model.tasks))
    return target, meta


def submission_meta(name: str, source: Path, run_meta: dict[str, Any], revision: str | None) -> SubmissionMeta:
    """The submitted model meta: the run's, under the leaderboard's revision, with descriptive gaps filled."""
    check_revision_name(revision, "--revision")
    meta = dict(run_meta)
    recorded = _recorded_models(name, source)
    hub_commit = next((str(m.hub_revision) for m in recorded if m.hub_revision), None)
    if revision:
        meta["revision"], revision_from = revision, "--revision"
    elif hub_commit:
        meta["revision"], revision_from = hub_commit, "the hub commit the run loaded"
    else:
        revision_from = "the weights fingerprint"
    out = SubmissionMeta(meta, revision_from)
    registered = _registry_meta(name)
    if registered is not None:
        for key in DESCRIPTIVE_FIELDS:
            if meta.get(key) in (None, [], {}) and registered.get(key) not in (None, [], {}):
                meta[key] = registered[key]
                out.from_registry.append(key)
    card = _model_card_fields(recorded)
    for key, value in card.items():
        if meta.get(key) is None:
            meta[key] = value
            out.from_card.append(key)
    out.unknown = [key for key in DESCRIPTIVE_FIELDS if meta.get(key) in (None, [], {})]
    if revision_from == "the weights fingerprint":
        known = f"; mteb's registry lists revision {registered['revision']} for {name}" if registered else ""
        logger.warning(
            "%s is filed under revision %s, a fingerprint of the local weights: the leaderboard files results "
            "under the hub commit, so this submission would sit in a folder of its own%s. Pass --revision COMMIT "
            "(the commit your weights are)",
            name,
            meta["revision"],
            known,
        )
    return out


def _recorded_models(name: str, source: Path) -> list[ManifestModel]:
    """The ``model`` entries the run's manifests hold for ``name`` at the revision folder ``source``."""
    from qzhou_eval.record.provenance import run_folder_of

    manifests = sorted(run_folder_of(source / "model_meta.json").glob(MANIFEST_GLOB))
    models = [manifest.model for path in manifests if (manifest := RunManifest.read(path)) is not None]
    return [m for m in models if m.name == name and m.revision == source.name]


def _registry_meta(name: str) -> dict[str, Any] | None:
    """mteb's own ModelMeta for ``name`` as JSON-ready values, or None for a model its registry lacks."""
    import mteb

    if name not in {m.name for m in mteb.get_model_metas()}:
        return None
    return mteb.get_model_meta(name).to_dict()


def _model_card_fields(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Fields the run's local checkpoint declares in its model card's YAML front matter (license)."""
    import yaml

    for model in models:
        try:
            text = (Path(str(model.path)) / "README.md").read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
        match = re.match(r"^---\n(.*?)\n---", text, re.S)
        try:
            front = (yaml.safe_load(match.group(1)) or {}) if match else {}
        except yaml.YAMLError:
            continue
        if isinstance(front, dict) and isinstance(front.get("license"), str):
            return {"license": front["license"]}
    return {}


RESULTS_REPO = "https://github.com/embeddings-benchmark/results"


def next_commands(out_dir: str | Path, model_name: str) -> list[str]:
    """What to run where the network is: mteb's own submission command (its ``--output-folder`` is ``out_dir``,
    whose ``results/`` holds the model), or the same by hand with git."""
    out = Path(out_dir)
    folder = model_folder(model_name)
    return [
        f"mteb submit-results --output-folder {out} --models {model_name}",
        f"mteb submit-results --output-folder {out} --models {model_name} --create-pr",
        f"git clone {RESULTS_REPO} && cp -r {out / 'results' / folder} results/results/ && cd results && "
        f"git checkout -b add-{folder} && git add results/{folder} && git commit -m 'Add results for {model_name}'",
    ]


def _check_model_meta(path: Path) -> dict[str, Any]:
    """model_meta.json must be a JSON object naming the model, before anything is written.

    (mteb's loader validates the rest when the submission is read back; older mteb versions wrote
    fields in shapes today's ModelMeta rejects, so a stricter check here would refuse real files.)
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError("it is not a JSON object with a 'name'")
        return data
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
