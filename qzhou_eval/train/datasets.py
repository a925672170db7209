"""Config datasets -> typed training sets: each carries its kind, loss and task instruction with its rows.

The instruction follows evaluation's rule (instructions/registry.py): the same template, the same
"documents only for symmetric tasks" decision, and, for a dataset named like a task of the configured
instruction set, that task's own instruction, so a recipe cannot train with one prompt and evaluate with another.
"""

from __future__ import annotations

import logging

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import (
    DEFAULT_VARIANT,
    InstructionSet,
    TaskInstruction,
    is_instruction_file,
    load_benchmark_instructions,
)
from qzhou_eval.train.config import DatasetSpec, TrainConfig
from qzhou_eval.train.data.readers import read_records, read_rows
from qzhou_eval.train.data.schema import DataKind, Loss, TrainingSet
from qzhou_eval.train.data.transforms import TRANSFORMS, classification_examples

logger = logging.getLogger(__name__)


def training_instructions(spec: str | None) -> InstructionSet:
    """The instruction set of ``TrainConfig.instructions``: a file, ``BENCHMARK`` or ``BENCHMARK@VARIANT``, or
    None (no task entries, the bundled template)."""
    if spec is None:
        return InstructionSet({}, origin="the bundled instruction template")
    if is_instruction_file(spec):
        return InstructionSet.from_file(spec)
    benchmark, _, variant = spec.partition("@")
    return load_benchmark_instructions(benchmark.strip(), variant.strip() or DEFAULT_VARIANT)


def task_instruction(spec: DatasetSpec, instructions: InstructionSet) -> TaskInstruction:
    """A dataset's instruction and document side: its task's in the instruction set, else its own by kind.

    Raises:
        InvalidOptionError: a dataset named like a task of the set but configured with another instruction.
    """
    kind = DataKind(spec.kind)
    if spec.name not in instructions:
        return TaskInstruction(spec.instruction, documents=kind.symmetric)
    entry = instructions.entry(spec.name)
    if spec.instruction and spec.instruction != entry.instruction:
        raise InvalidOptionError(
            f"dataset {spec.name!r} is configured with instruction {spec.instruction!r}, but {instructions.origin} "
            f"evaluates task {spec.name} with {entry.instruction!r}; drop the dataset's instruction (it then takes "
            "the task's) or rename the dataset"
        )
    return entry


def load_training_sets(config: TrainConfig, instructions: InstructionSet | None = None) -> list[TrainingSet]:
    """Read every dataset of ``config`` (in config order); classification texts become example rows.

    Raises:
        InvalidOptionError: unreadable or empty data, a single-label classification set, a conflicting instruction.
    """
    instructions = instructions or training_instructions(config.instructions)
    out = []
    for spec in config.datasets:
        instruction = task_instruction(spec, instructions)
        if spec.transform:
            raw = read_records(spec.path)
            rows = TRANSFORMS[spec.transform](raw, spec.name, instruction.instruction, **(spec.transform_args or {}))
        else:
            rows = read_rows(spec.path, spec.kind, dataset=spec.name, instruction=instruction.instruction)
        if spec.kind == DataKind.CLASSIFICATION.value:
            rows = classification_examples(rows, negatives=config.hard_negatives, seed=config.seed)
        if not rows:
            raise InvalidOptionError(f"dataset {spec.name!r} ({spec.path}) yields no training rows")
        out.append(TrainingSet(spec.name, DataKind(spec.kind), Loss(spec.loss), instruction, list(rows)))
        logger.info("dataset %s: %d %s rows", spec.name, len(rows), spec.kind)
    return out
