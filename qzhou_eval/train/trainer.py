"""The engine: transformers' Trainer with grouped batches, per-kind losses, and a checkpoint the harness reads.

Launch with ``qzhou-eval train CONFIG`` (one process) or ``torchrun --nproc_per_node N -m qzhou_eval.cli.main
train CONFIG`` (gloo on CPU, NCCL on GPU; DeepSpeed through the config's ``deepspeed`` file).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainingArguments

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.callbacks import LossLogCallback
from qzhou_eval.train.checkpoint import save_embedding_checkpoint
from qzhou_eval.train.collate import Collator
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.datasets import load_training_rows
from qzhou_eval.train.losses import cosent, info_nce
from qzhou_eval.train.model import EmbeddingModel
from qzhou_eval.train.sampling import GroupedBatches, dataset_weights

logger = logging.getLogger(__name__)
CONFIG_FILE = "train_config.json"


class _Rows(Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


class RankBatchSampler:
    """Each step: one dataset for all ranks (same seed), each rank its slice of the global batch."""

    def __init__(self, grouped: GroupedBatches, offsets: dict[str, int], steps: int, rank: int, world: int) -> None:
        self.grouped, self.offsets, self.steps, self.rank, self.world = grouped, offsets, steps, rank, world

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            name, rows = self.grouped.next_batch()
            per_rank = len(rows) // self.world
            local = rows[self.rank * per_rank : (self.rank + 1) * per_rank]
            yield [self.offsets[name] + r for r in local]


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
        if inputs["kind"] == "pair":
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


def train(config: TrainConfig) -> Path:
    """Run one stage; returns the output folder (a checkpoint ``load_encoder`` reads).

    Raises:
        InvalidOptionError: before training, for bad data, weights, batch sizes or a changed config on resume.
    """
    out = Path(config.output_dir)
    resume = _check_resume(config, out)
    rank, world = _world()
    data = load_training_rows(config)
    sizes = {name: len(rows) for name, rows in data.items()}
    group = [d.name for d in config.datasets if d.retrieval_group]
    weights = dataset_weights(
        sizes, config.alpha, retrieval=group if config.retrieval_share else None, retrieval_ratio=config.retrieval_share
    )
    kinds = {d.name: d.kind for d in config.datasets}
    batch_sizes = {n: config.pair_batch_size if kinds[n] == "pair" else config.batch_size for n in sizes}
    bad = {n: b for n, b in batch_sizes.items() if b % world}
    if bad:
        raise InvalidOptionError(f"global batch sizes {bad} are not divisible by the {world} processes")
    grouped = GroupedBatches(sizes, weights, batch_sizes, seed=config.seed, shuffle=config.shuffle_rows)
    steps = config.max_steps or math.ceil(
        config.num_epochs * sum(math.ceil(n / batch_sizes[k]) for k, n in sizes.items())
    )
    flat, offsets = [], {}
    for name, rows in data.items():
        offsets[name] = len(flat)
        flat.extend(rows)

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
    )
    cuda = torch.cuda.is_available()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) if config.bf16 == "auto" else bool(config.bf16)
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        bf16=bf16,
        seed=config.seed,
        report_to=[],
        per_device_train_batch_size=1,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not cuda,
        ddp_backend="gloo" if (world > 1 and not cuda) else None,
        deepspeed=config.deepspeed,
        disable_tqdm=False,
    )
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
        train_dataset=_Rows(flat),
        data_collator=collator,
        callbacks=[LossLogCallback(out, texts_per_step={n: batch_sizes[n] for n in sizes})],
        qzhou=config,
        batch_sampler=RankBatchSampler(grouped, offsets, steps, rank, world),
        collator=collator,
    )
    trainer.train(resume_from_checkpoint=True if resume else None)
    if trainer.is_world_process_zero():
        save_embedding_checkpoint(model, out, config)
    return out
