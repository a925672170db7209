"""The engine: transformers' Trainer with grouped batches, per-kind losses, and a checkpoint the harness reads.

Launch with ``qzhou-eval train CONFIG`` (one process) or ``torchrun --nproc_per_node N -m qzhou_eval.cli.main
train CONFIG`` (gloo on CPU, NCCL on GPU; DeepSpeed through the config's ``deepspeed`` file).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from qzhou_eval._atomic import atomic_write_json
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.callbacks import LossLogCallback
from qzhou_eval.train.checkpoint import save_embedding_checkpoint
from qzhou_eval.train.collate import Collator
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.data.schema import Loss, TrainingSet
from qzhou_eval.train.datasets import load_training_sets, training_instructions
from qzhou_eval.train.losses import cosent, info_nce
from qzhou_eval.train.model import EmbeddingModel
from qzhou_eval.train.sampling import GroupedBatches, dataset_weights

logger = logging.getLogger(__name__)
CONFIG_FILE = "train_config.json"


class _Rows(Dataset):
    """Every training set's rows in one index space; an item is its (set, row) pair, the set shared, not copied."""

    def __init__(self, sets: list[TrainingSet]) -> None:
        self.items = [(training_set, row) for training_set in sets for row in training_set.rows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[TrainingSet, object]:
        return self.items[index]


class RankBatchSampler:
    """Each step: one dataset for all ranks (same seed), each rank its slice of the global batch.

    Keeps the grouped sampler's state as it was before each of the last few batches, so a checkpoint saved
    after batch N stores exactly the state that draws batch N+1 (the data loader may have drawn ahead).
    """

    def __init__(self, grouped: GroupedBatches, offsets: dict[str, int], steps: int, rank: int, world: int) -> None:
        self.grouped, self.offsets, self.steps, self.rank, self.world = grouped, offsets, steps, rank, world
        self._before: dict[int, dict] = {}  # batches drawn -> the sampler's state at that point

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            drawn = self.grouped.state.step
            self._before[drawn] = self.grouped.state_dict()
            self._before.pop(drawn - _SNAPSHOTS_KEPT, None)
            name, rows = self.grouped.next_batch()
            per_rank = len(rows) // self.world
            local = rows[self.rank * per_rank : (self.rank + 1) * per_rank]
            yield [self.offsets[name] + r for r in local]

    def state_after(self, batches: int) -> dict:
        """The state that draws batch ``batches + 1``."""
        if batches == self.grouped.state.step:
            return self.grouped.state_dict()
        return self._before[batches]


_SNAPSHOTS_KEPT = 8  # the data loader draws at most a batch or two ahead of training
SAMPLER_STATE_FILE = "sampler_state.json"


class SamplerStateCallback(TrainerCallback):
    """Saves the grouped sampler's state in every checkpoint, so a resumed run draws on where it stopped."""

    def __init__(self, sampler: RankBatchSampler) -> None:
        self.sampler = sampler

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            batches = state.global_step * args.gradient_accumulation_steps
            atomic_write_json(folder / SAMPLER_STATE_FILE, self.sampler.state_after(batches))


def _restore_sampler(grouped: GroupedBatches, out: Path) -> bool:
    """Load the last checkpoint's sampler state into ``grouped``; False when it has none (the trainer then
    re-draws and skips the batches already trained, which gives the same batches, only slower)."""
    last = get_last_checkpoint(str(out))
    saved = Path(last) / SAMPLER_STATE_FILE if last else None
    if saved is None or not saved.is_file():
        logger.info("%s has no %s; the trainer skips the batches already trained instead", last, SAMPLER_STATE_FILE)
        return False
    grouped.load_state_dict(json.loads(saved.read_text(encoding="utf-8")))
    logger.info("resuming the data order from %s (%d batches drawn)", saved, grouped.state.step)
    return True


class EmbeddingTrainer(Trainer):
    """Trainer whose loss depends on the batch kind, and whose batches come from the grouped sampler."""

    def __init__(self, *args, qzhou: TrainConfig, batch_sampler: RankBatchSampler, collator: Collator, **kwargs):
        super().__init__(*args, **kwargs)
        self.qzhou, self._batch_sampler, self._collator = qzhou, batch_sampler, collator

    def get_train_dataloader(self) -> DataLoader:
        # Not sharded by accelerate: the sampler already gives every rank its slice of the same dataset.
        return DataLoader(self.train_dataset, batch_sampler=self._batch_sampler, collate_fn=self._collator)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        embeddings = model(inputs["features"])
        loss = sum(self._loss(inputs, embeddings[:, :d]) for d in self._dims(embeddings)) / len(self._dims(embeddings))
        return (loss, {"embeddings": embeddings}) if return_outputs else loss

    def _dims(self, embeddings: torch.Tensor) -> list[int]:
        return list(self.qzhou.matryoshka_dims or [embeddings.shape[1]])

    def _loss(self, inputs: dict, emb: torch.Tensor) -> torch.Tensor:
        parts = torch.split(emb, inputs["counts"])
        if inputs["loss"] is Loss.COSENT:
            return cosent(parts[0], parts[1], inputs["scores"], scale=self.qzhou.cosent_scale)
        queries, positives = parts[0], parts[1]
        k = inputs["hard_negatives"]
        negatives = parts[2].reshape(len(queries), k, -1) if k else None
        keys = inputs["keys"].to(emb.device) if self.qzhou.mask_in_batch_copies and "keys" in inputs else None
        return info_nce(
            queries, positives, negatives, temperature=self.qzhou.temperature, labels=inputs.get("labels"), keys=keys
        )


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    import os

    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _check_resume(config: TrainConfig, out: Path) -> bool:
    """True when an earlier run of the same config left checkpoints to resume from."""
    saved = out / CONFIG_FILE
    checkpoints = sorted(out.glob("checkpoint-*"))
    if not saved.is_file() or not checkpoints:
        return False
    old = json.loads(saved.read_text(encoding="utf-8"))
    new = config.resume_key()
    if old.get("resume_key") != new:
        changed = sorted(
            k for k in set(old.get("resume_key", {})) | set(new) if old.get("resume_key", {}).get(k) != new.get(k)
        )
        raise InvalidOptionError(
            f"{out} holds checkpoints of a different config (changed: {changed}); resume with the same config "
            "or choose another output_dir"
        )
    return True


# TrainingArguments the harness sets from its own config fields or needs as they are (the config's
# ``training_args`` may set any other field).
_OWNED_ARGUMENTS = {
    "output_dir": "output_dir",
    "max_steps": "max_steps / num_epochs",
    "num_train_epochs": "max_steps / num_epochs",
    "learning_rate": "learning_rate",
    "warmup_steps": "warmup_steps",
    "weight_decay": "weight_decay",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "seed": "seed",
    "bf16": "bf16",
    "deepspeed": "deepspeed",
    "per_device_train_batch_size": "batch_size / pair_batch_size (global batches from the grouped sampler)",
    "remove_unused_columns": None,
    "ignore_data_skip": None,
}


def check_training_args(config: TrainConfig) -> dict:
    """The config's ``training_args``, each a TrainingArguments field the harness leaves to the user.

    Raises:
        InvalidOptionError: an unknown field (with the closest names) or one the harness owns (naming its field).
    """
    fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    extra = dict(config.training_args or {})
    for key in extra:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            raise InvalidOptionError(
                f"training_args.{key} is not a transformers TrainingArguments field"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
            )
        if key in _OWNED_ARGUMENTS:
            owner = _OWNED_ARGUMENTS[key]
            raise InvalidOptionError(
                f"training_args.{key} is set by the harness"
                + (f"; use the config's {owner}" if owner else " (the grouped sampler needs it as it is)")
            )
    return extra


def training_arguments(
    config: TrainConfig, out: Path, steps: int, world: int, ignore_data_skip: bool
) -> TrainingArguments:
    """The Trainer's arguments: the recipe's fields, the harness's defaults, then the config's ``training_args``.

    Raises:
        InvalidOptionError: a ``training_args`` key that TrainingArguments lacks or the harness owns.
    """
    extra = check_training_args(config)
    cuda = torch.cuda.is_available()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) if config.bf16 == "auto" else bool(config.bf16)
    defaults = {
        "save_total_limit": 2,
        "report_to": [],
        "dataloader_num_workers": 0,
        "use_cpu": not cuda,
        "ddp_backend": "gloo" if (world > 1 and not cuda) else None,
        "disable_tqdm": False,
    }
    return TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        bf16=bf16,
        seed=config.seed,
        deepspeed=config.deepspeed,
        per_device_train_batch_size=1,
        remove_unused_columns=False,
        ignore_data_skip=ignore_data_skip,
        **{**defaults, **extra},
    )


def train(config: TrainConfig) -> Path:
    """Run one stage; returns the output folder (a checkpoint ``load_encoder`` reads).

    Raises:
        InvalidOptionError: before training, for bad data, weights, batch sizes or a changed config on resume.
    """
    out = Path(config.output_dir)
    check_training_args(config)
    resume = _check_resume(config, out)
    rank, world = _world()
    instructions = training_instructions(config.instructions)
    sets = load_training_sets(config, instructions)
    sizes = {s.name: len(s.rows) for s in sets}
    group = [d.name for d in config.datasets if d.retrieval_group]
    weights = dataset_weights(
        sizes, config.alpha, retrieval=group if config.retrieval_share else None, retrieval_ratio=config.retrieval_share
    )
    batch_sizes = {s.name: config.pair_batch_size if s.loss is Loss.COSENT else config.batch_size for s in sets}
    bad = {n: b for n, b in batch_sizes.items() if b % world}
    if bad:
        raise InvalidOptionError(f"global batch sizes {bad} are not divisible by the {world} processes")
    grouped = GroupedBatches(sizes, weights, batch_sizes, seed=config.seed, shuffle=config.shuffle_rows)
    steps = config.max_steps or math.ceil(
        config.num_epochs * sum(math.ceil(n / batch_sizes[k]) for k, n in sizes.items())
    )
    rows = _Rows(sets)
    offsets = {s.name: sum(len(t.rows) for t in sets[:i]) for i, s in enumerate(sets)}

    model = EmbeddingModel.load(
        config.model,
        pooling=config.pooling,
        bidirectional=config.bidirectional,
        max_length=max(config.query_max_length, config.passage_max_length),
        trust_remote_code=config.trust_remote_code,
    )
    if config.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    collator = Collator(
        model.encoder.tokenizer,
        model.encoder.formatter,
        config.query_max_length,
        config.passage_max_length,
        config.hard_negatives,
        instructions.template,
    )
    sampler = RankBatchSampler(grouped, offsets, steps, rank, world)
    restored = resume and _restore_sampler(grouped, out)
    args = training_arguments(config, out, steps, world, ignore_data_skip=restored)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(
            json.dumps(
                {
                    "config": config.to_dict(),
                    "resume_key": config.resume_key(),
                    "dataset_weights": weights,
                    "steps": steps,
                },
                indent=2,
            )
        )
    trainer = EmbeddingTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=collator,
        callbacks=[
            LossLogCallback(out, texts_per_step={n: batch_sizes[n] for n in sizes}),
            SamplerStateCallback(sampler),
        ],
        qzhou=config,
        batch_sampler=sampler,
        collator=collator,
    )
    trainer.train(resume_from_checkpoint=True if resume else None)
    if trainer.is_world_process_zero():
        trained_with = {s.name: s.instruction.instruction for s in sets if s.instruction.instruction}
        save_embedding_checkpoint(model, out, config, trained_with)
    return out
