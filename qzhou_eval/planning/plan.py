"""``qzhou-eval plan``: a run's cost per task and per suite, before anything is encoded.

It resolves the run exactly as ``run`` does (checkpoint or preset, options, instructions, batching), counts
each task's texts from mteb's descriptive statistics, measures token lengths with the model's tokenizer on
local text, and turns them into tokens, padding, FLOPs, time and cache size. Nothing here loads weights
unless ``measure`` asks for this machine's throughput.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qzhou_eval._paths import demo_data_dir
from qzhou_eval.constants import TEMPLATE_TEXT_SLOT
from qzhou_eval.encoder.cache import stored_row_bytes
from qzhou_eval.encoder.pass_base import normalised_in_float32
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import route_prefix
from qzhou_eval.integrity.exhaustion import free_bytes
from qzhou_eval.option_table import REFERENCE
from qzhou_eval.options import Batching
from qzhou_eval.planning import estimate
from qzhou_eval.planning.compute import ModelShape, Throughput, model_shape
from qzhou_eval.planning.counts import TEXT, TaskCounts, task_counts, task_language
from qzhou_eval.planning.estimate import TaskPlan
from qzhou_eval.planning.lengths import LengthSample, assumed_sample, local_side_texts, measure, shared_text_share
from qzhou_eval.resolution.resolve import resolve
from qzhou_eval.resolution.spec import RunSpec
from qzhou_eval.runs.config import CACHE_DIRNAME, RunConfig
from qzhou_eval.runs.suites import run_tasks

_TWO_COLUMN_TYPES = ("STS", "PairClassification")


@dataclass
class PlannedModel:
    """What the plan knows of the model: the resolved run, its shape, and tokenizer (None: not on this machine)."""

    spec: RunSpec
    shape: ModelShape
    tokenizer: Any
    projected: bool  # a Dense head follows the pooling

    @property
    def name(self) -> str:
        return self.spec.source.name_or_path


@dataclass
class Plan:
    suite: str
    model: PlannedModel
    batching: Batching
    throughput: Throughput | None
    local: Throughput | None
    gpus: int
    value_bytes: int
    tasks: list[TaskPlan]
    cache_path: Path | None
    cache_free_bytes: int | None
    notes: list[str] = field(default_factory=list)

    def remaining(self) -> list[TaskPlan]:
        return [t for t in self.tasks if not t.done]

    def total(self, name: str, tasks: list[TaskPlan] | None = None) -> float:
        chosen = self.tasks if tasks is None else tasks
        if name in ("flops", "seconds", "local_seconds", "cache_bytes"):
            return sum(getattr(t, name) or 0.0 for t in chosen)
        return sum(t.total(name) for t in chosen)

    @property
    def disk_short(self) -> bool:
        need = self.total("cache_bytes", self.remaining())
        return self.cache_free_bytes is not None and need > self.cache_free_bytes


def build_plan(
    config: RunConfig,
    throughput: Throughput | None,
    gpus: int = 1,
    measure_here: bool = False,
    hide_local: frozenset[str] = frozenset(),
) -> Plan:
    """The plan of ``config`` (a run's settings) on ``throughput`` with ``gpus`` data-parallel ranks.

    ``hide_local`` plans those tasks as if no local copy of them existed (how its validation tells the error
    of a task planned from statistics alone).

    Raises:
        InvalidOptionError, ModelNotFoundError: naming the fix, before any work.
    """
    if gpus < 1:
        raise InvalidOptionError(f"--gpus {gpus}: at least 1")
    tasks = run_tasks(config.benchmark, config.tasks, config.exclude_tasks, config.task_types)
    names = [t.metadata.name for t in tasks]
    on_gpu = throughput is not None  # a named device (a GPU, or a GPU's measured tokens/s): bf16, the CUDA budget
    # The run as it will be made: on the named device's defaults (bf16, the CUDA budget), else on this machine's.
    spec = resolve(replace(config.request(names), device="cuda" if on_gpu else config.device, weights_required=False))
    model = planned_model(spec)
    batching = spec.batching
    value_bytes = _value_bytes(model)
    notes: list[str] = []
    samples = _Samples(model.tokenizer, config.data_dir, notes, hide_local)
    local = None
    if measure_here:  # this machine's rate: the same run on this machine's device (a second request when they differ)
        here = spec if not on_gpu else resolve(config.request(names))
        local = measure_throughput(here, model, samples)
    done = _finished_tasks(config, spec, notes)
    max_length = spec.max_length
    planned = []
    for task in tasks:
        counts = samples.with_shared_texts(task, task_counts(task))
        sides = []
        for side in counts.sides:
            prefix = route_prefix(
                spec.instructions, counts.task, None if side.side == TEXT else side.side, spec.use_instruction
            )
            sample = samples.for_side(counts, side.side, side.mean_characters)
            sides.append((side, sample, _overhead(model, prefix, sample)))
        planned.append(
            estimate.plan_task(
                counts,
                sides,
                model.shape,
                max_length,
                batching,
                throughput,
                local,
                gpus,
                stored_row_bytes(model.shape.output_dim, value_bytes),
                counts.task in done,
            )
        )
    cache_path = _cache_path(config)
    return Plan(
        config.suite,
        model,
        batching,
        throughput,
        local,
        gpus,
        value_bytes,
        planned,
        cache_path,
        free_bytes(cache_path) if cache_path else None,
        notes,
    )


def planned_model(spec: RunSpec) -> PlannedModel:
    """The checkpoint's shape and tokenizer; a published model whose files are not here is planned from its
    preset's ``architecture`` (and its tokenizer, if the hub cache has it)."""
    if spec.architecture is not None:
        arch = spec.architecture
        dense = [tuple(d) for d in arch.get("dense", [])]
        shape = model_shape(arch["config"], dense, spec.dim, arch["source"])
        return PlannedModel(spec, shape, _cached_tokenizer(spec.choice.preset.model), bool(dense))
    if spec.info is None:
        raise InvalidOptionError(
            f"plan reads the model's config.json and tokenizer, which a served model ({spec.source.name_or_path}) "
            "does not have here: pass the checkpoint folder as --model_name_or_path"
        )
    from qzhou_eval.modeling.loading import load_backbone_config, load_tokenizer

    source, layout = spec.source, spec.info.layout
    backbone = load_backbone_config(source, layout, spec.trust_remote_code).to_dict()
    dense = []
    for folder in layout.dense_subfolders if layout else ():
        config = source.read_json(f"{folder}/config.json") or {}
        dense.append((int(config["in_features"]), int(config["out_features"])))
    shape = model_shape(backbone, dense, spec.dim, f"{source.name_or_path}/config.json")
    return PlannedModel(spec, shape, load_tokenizer(source, layout, spec.trust_remote_code), bool(dense))


def _cached_tokenizer(hub_id: str):
    """The published tokenizer from the local hub cache, if it was downloaded before; else None (ratios assumed)."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(hub_id, local_files_only=True)
    except Exception:  # absent from the cache, in any of transformers' ways of saying so
        return None


def _value_bytes(model: PlannedModel) -> int:
    """Bytes per stored value: a bf16 run's vectors are bf16 exactly unless normalised after the float32 cast."""
    exact_half = model.spec.dtype == "bfloat16" and not normalised_in_float32(model.projected, model.spec.dim)
    return 2 if exact_half else 4


def _overhead(model: PlannedModel, prefix: str, sample: LengthSample) -> int:
    """Tokens the prefix, the template and the special tokens add to every text of a side."""
    template = model.spec.prompt_template
    framed = template.replace(TEMPLATE_TEXT_SLOT, prefix) if template else prefix
    if model.tokenizer is None:
        return math.ceil(len(framed) / sample.chars_per_token) + 2
    return len(model.tokenizer(framed, add_special_tokens=True)["input_ids"])


class _Samples:
    """Length samples: each local task's own, per side; and per language, pooled over the local tasks."""

    def __init__(self, tokenizer, data_dir: Path | None, notes: list[str], hidden: frozenset[str]) -> None:
        self.tokenizer = tokenizer
        self.notes = notes
        self.folders = {k: v for k, v in _local_folders(data_dir).items() if k not in hidden}
        self._own: dict[str, dict[str, LengthSample]] = {}
        self._language: dict[str, LengthSample | None] = {}
        self._sampled: dict[str, dict[str, list[str]]] = {}

    def for_side(self, counts: TaskCounts, side: str, mean_chars: float) -> LengthSample:
        own = self._own_sample(counts.task).get(side) if self.tokenizer is not None else None
        if own is not None:
            return own
        pooled = self._language_sample(counts.language)
        if pooled is None:
            return assumed_sample(counts.language, mean_chars)
        return pooled.stretched_to(mean_chars, f"{pooled.source}, scaled to {mean_chars:.0f} chars")

    def with_shared_texts(self, task, counts: TaskCounts) -> TaskCounts:
        """An STS or pair task with a local copy: its columns' shared texts counted once, as the encoder does."""
        folder = self.folders.get(counts.task)
        if folder is None or counts.task_type not in _TWO_COLUMN_TYPES:
            return counts
        return counts.with_shared(TEXT, shared_text_share(folder, set(task.eval_splits)))

    def _own_sample(self, task: str) -> dict[str, LengthSample]:
        if task not in self._own:
            folder, language = self.folders.get(task), _task_language(task)
            self._own[task] = {
                side: measure(self.tokenizer, t, f"own copy ({folder.name})", language)
                for side, t in self._texts(task).items()
            }
        return self._own[task]

    def _language_sample(self, language: str) -> LengthSample | None:
        if language not in self._language:
            used = [task for task in sorted(self.folders) if _task_language(task) == language]
            texts = [t for task in used for side_texts in self._texts(task).values() for t in side_texts]
            self._language[language] = (
                measure(self.tokenizer, texts, f"{language} text of {'+'.join(used)}", language) if texts else None
            )
            if not texts:
                self.notes.append(f"no local {language} text: its tasks use an assumed characters-per-token ratio")
        return self._language[language]

    def _texts(self, task: str) -> dict[str, list[str]]:
        """The sampled texts of a local task, per side, read once for its own sample and its language's."""
        if task not in self._sampled:
            folder = self.folders.get(task)
            self._sampled[task] = local_side_texts(folder, task, _encoded_splits(task)) if folder else {}
        return self._sampled[task]


@functools.cache
def _local_task(name: str):
    """The mteb task of a local folder's name, or None for a folder that is no mteb task."""
    import mteb

    try:
        return mteb.get_task(name)
    except Exception:  # mteb says "unknown task" in several ways
        return None


def _encoded_splits(name: str) -> set[str]:
    """The splits whose texts a task encodes: its evaluation splits, and a classifier's training split."""
    task = _local_task(name)
    train = {getattr(task, "train_split", "train")} if task.metadata.type == "Classification" else set()
    return set(task.eval_splits) | train


def _local_folders(data_dir: Path | None) -> dict[str, Path]:
    """Task folders on this machine: the bundled demo pack, then --data_dir (which wins for a task in both)."""
    found: dict[str, Path] = {}
    for root in (demo_data_dir(), data_dir):
        if root is not None and Path(root).is_dir():
            for folder in sorted(Path(root).iterdir()):
                if (folder / "README.md").is_file():
                    found[folder.name] = folder
    return found


def _task_language(name: str) -> str | None:
    task = _local_task(name)
    return task_language(task) if task is not None else None


def _finished_tasks(config: RunConfig, spec: RunSpec, notes: list[str]) -> set[str]:
    """Tasks the output folder's manifest records as finished, when its inputs are this run's (a run would
    refuse the folder otherwise). Read only: nothing in the folder is moved or repaired."""
    from qzhou_eval.run_manifest import RunManifest
    from qzhou_eval.runs.manifest import inputs_differ, manifest_path

    path = manifest_path(config.output_dir, config.suite)
    manifest = RunManifest.read(path) if path.is_file() else None
    finished = {n for n, entry in (manifest.tasks if manifest else {}).items() if entry.status == "finished"}
    if not finished:
        return finished
    if spec.architecture is not None:
        notes.append(f"{path.name}'s inputs could not be checked: the model's files are not here; taken as they are")
        return finished
    differs = inputs_differ(manifest, spec.inputs)
    if differs:
        notes.append(
            f"{config.output_dir} holds results made with other inputs ({differs}): a run refuses the folder "
            "(--overwrite sets it aside), so nothing there counts as done"
        )
        return set()
    return finished


def _cache_path(config: RunConfig) -> Path | None:
    if not config.cache_dir or config.encoder_options.get("batching") == REFERENCE:  # the reference caches nothing
        return None
    root = Path(config.output_dir) / CACHE_DIRNAME if config.cache_dir is True else Path(config.cache_dir)
    return root / "embeddings.sqlite"


def measure_throughput(spec: RunSpec, model: PlannedModel, samples: _Samples, seconds: float = 8.0) -> Throughput:
    """Tokens per second (padding included) of this machine on the local text, with the run's own encoder."""
    import time

    from qzhou_eval.api import build_encoder

    if model.tokenizer is None or not samples.folders:
        raise InvalidOptionError("--measure needs the model's files and some local text (--data_dir or demo-data)")
    texts = [
        t for folder in samples.folders.values() for ts in local_side_texts(folder, "measure").values() for t in ts
    ]
    encoder = build_encoder(spec)
    encoder.encode(
        texts[:256], show_progress=False
    )  # warm-up: first-call allocation and kernel selection are not throughput
    before = encoder.stats.copy()
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:  # calls of a task's size: per-call costs weigh as in a run
        chunk = [texts[(done + i) % len(texts)] + " " * (1 + (done + i) // len(texts)) for i in range(2048)]
        encoder.encode(chunk, show_progress=False)  # the added spaces: never a cache or dedupe hit
        done += len(chunk)
    used = encoder.stats.minus(before)
    rate = used.padded_tokens / max(1e-9, time.perf_counter() - start)
    return Throughput("this machine", tokens_per_s=rate)
