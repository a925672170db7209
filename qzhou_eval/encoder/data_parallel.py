"""Data-parallel encoding over torch.distributed: every encode call split across the ranks by tokens.

Under ``torchrun --nproc_per_node N`` (and ``--nnodes M``) each rank runs the same evaluation. In
every encode call the ranks agree on the distinct texts (same formatting and dedupe everywhere), the
writer (rank 0) looks them up in the embedding cache and shares what it found, the rest are dealt
out in descending token length (rank r takes every N-th text, so each rank gets the same mix of
lengths and the same number of tokens to within one text), and the embeddings are gathered back, so
every rank holds every vector and computes the same scores. Only the writer writes results,
manifests and cache. Collectives run on the GPU with NCCL, on the CPU with gloo.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from qzhou_eval.encoder.stats import EncodeStats
from qzhou_eval.errors import DistributedError

logger = logging.getLogger(__name__)

WRITER = 0
# How long a rank waits in a collective before it gives up on a silent peer (a dead rank's closed
# socket is noticed at once; this only bounds a hung one).
DEFAULT_TIMEOUT = timedelta(minutes=int(os.environ.get("QZHOU_EVAL_DIST_TIMEOUT_MIN", "30")))


def rank_device(requested: str | None) -> str | None:
    """This rank's device: ``cuda:<LOCAL_RANK>`` when CUDA is there and no other device was asked for."""
    if requested not in (None, "cuda") or not torch.cuda.is_available():
        return requested
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return f"cuda:{local}"


class DataParallel:
    """This process's place in the group, and the collectives the encoder and runner need."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        if not dist.is_initialized():
            backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=DEFAULT_TIMEOUT)
        self.device = torch.device(device)  # where this rank runs an in-process model
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.comm_device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")
        self._calls = 0
        logger.info("rank %d of %d (%s backend)", self.rank, self.world_size, dist.get_backend())

    @property
    def is_writer(self) -> bool:
        return self.rank == WRITER

    def close(self) -> None:
        """Leave the group; vLLM's groups (``--backend vllm``) go first, or its own shutdown fails on them later."""
        vllm_groups = sys.modules.get("vllm.distributed.parallel_state")
        if vllm_groups is not None and vllm_groups.model_parallel_is_initialized():
            vllm_groups.destroy_model_parallel()
            vllm_groups.destroy_distributed_environment()  # its world group, then the default one
        if dist.is_initialized():
            dist.destroy_process_group()

    def _collective(self, step: str, fn: Callable, *args):
        try:
            return fn(*args)
        except (RuntimeError, dist.DistBackendError) as exc:
            raise DistributedError(
                f"rank {self.rank}: another rank stopped answering during {step} ({str(exc).splitlines()[0][:200]}); "
                "every rank stops here. torchrun's summary names the rank that failed first and its error; fix "
                "that and rerun the same command: finished tasks are kept"
            ) from exc

    def broadcast_object(self, value=None):
        """The writer's ``value`` on every rank (decisions: which tasks run, or why none can)."""
        box = [value if self.is_writer else None]
        self._collective("a broadcast from rank 0", dist.broadcast_object_list, box, WRITER)
        return box[0]

    def agree(self, what: str, value: str) -> None:
        """Stop every rank, naming who differs, if the ranks are not at the same step with the same value."""
        values: list = [None] * self.world_size
        self._collective(f"the check of {what}", dist.all_gather_object, values, value)
        if len(set(values)) > 1:
            odd = [f"rank {r}: {v}" for r, v in enumerate(values) if v != values[WRITER]]
            raise DistributedError(
                f"the ranks disagree on {what} (rank 0: {values[WRITER]}; {'; '.join(odd[:4])}); "
                "every rank stops. Start all ranks with the same command and data"
            )

    def share_cached(
        self,
        todo: Sequence[str],
        found: dict[str, np.ndarray],
        dim: int,
        stats: EncodeStats,
        writer_counts: tuple[int, int, int],
    ) -> dict[str, np.ndarray]:
        """Every rank gets the vectors the writer's cache holds for ``todo``, and the same cache counts."""
        self._calls += 1
        digest = hashlib.sha256("\x00".join(todo).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        self.agree("the texts of an encode call", f"call {self._calls}: {len(todo)} texts {digest}")
        mask = torch.zeros(len(todo) + 3, dtype=torch.int64)
        if self.is_writer:
            mask[: len(todo)] = torch.tensor([t in found for t in todo], dtype=torch.int64)
            mask[len(todo) :] = torch.tensor(writer_counts, dtype=torch.int64)
        mask = self._broadcast_tensor("the cache lookup", mask)
        hits = [t for t, m in zip(todo, mask[: len(todo)].tolist()) if m]
        if not self.is_writer:
            stats.reused_this_run, stats.reused_earlier, stats.repaired = (
                a + b
                for a, b in zip(
                    (stats.reused_this_run, stats.reused_earlier, stats.repaired), mask[len(todo) :].tolist()
                )
            )
        if not hits:
            return {}
        vectors = torch.zeros((len(hits), dim), dtype=torch.float32)
        if self.is_writer:
            vectors = torch.from_numpy(np.stack([found[t] for t in hits]))
        vectors = self._broadcast_tensor("the cached vectors", vectors).numpy()
        return dict(zip(hits, vectors))

    def embed(self, texts: list[str], run) -> np.ndarray:
        """Embed distinct ``texts`` with ``run`` (a callable on a list of texts), split across the ranks."""
        lengths = self._all_lengths(texts, run.token_lengths)
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        shares = [order[r :: self.world_size] for r in range(self.world_size)]
        mine = run([texts[i] for i in shares[self.rank]])
        width = mine.shape[1]
        most = max(len(s) for s in shares)
        padded = torch.zeros((most, width), dtype=torch.float32)
        padded[: len(mine)] = torch.from_numpy(mine)
        gathered = [torch.empty_like(padded, device=self.comm_device) for _ in range(self.world_size)]
        self._collective("the gathering of embeddings", dist.all_gather, gathered, padded.to(self.comm_device))
        out = np.empty((len(texts), width), dtype=np.float32)
        for share, part in zip(shares, gathered):
            out[share] = part[: len(share)].cpu().numpy()
        return out

    def _all_lengths(self, texts: list[str], token_lengths: Callable[[list[str]], list[int]]) -> list[int]:
        """Token counts of every text: each rank tokenises every N-th one, then all are exchanged."""
        part = token_lengths(texts[self.rank :: self.world_size])
        most = -(-len(texts) // self.world_size)
        local = torch.full((most,), -1, dtype=torch.int64)
        local[: len(part)] = torch.tensor(part, dtype=torch.int64)
        gathered = [torch.empty_like(local, device=self.comm_device) for _ in range(self.world_size)]
        self._collective("the exchange of token lengths", dist.all_gather, gathered, local.to(self.comm_device))
        lengths = [0] * len(texts)
        for r, part_lengths in enumerate(gathered):
            for j, n in enumerate(part_lengths.cpu().tolist()[: len(range(r, len(texts), self.world_size))]):
                lengths[r + j * self.world_size] = n
        return lengths

    def _broadcast_tensor(self, step: str, tensor: torch.Tensor) -> torch.Tensor:
        moved = tensor.to(self.comm_device)
        self._collective(step, dist.broadcast, moved, WRITER)
        return moved.cpu()
