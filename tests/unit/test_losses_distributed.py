"""Cross-rank negatives: two gloo processes each holding half a batch reproduce the full-batch loss."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from qzhou_eval.train.losses import TextKeys, info_nce

pytestmark = pytest.mark.multiproc  # child processes: off in the inner loop, on in CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys(keys, part=slice(None)):
    qk, pk, nk = keys
    return TextKeys(qk[part], pk[part], nk.reshape(qk.shape[0], -1)[part].reshape(-1))


def _worker(rank, world, port, q, p, n, labels, keys, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    half = q.shape[0] // world
    part = slice(rank * half, (rank + 1) * half)
    local_q = q[part].clone().requires_grad_(True)
    loss = info_nce(local_q, p[part], n[part], temperature=0.05, labels=labels[part], keys=_keys(keys, part))
    loss.backward()
    out[rank] = torch.tensor([float(loss.detach()), float(local_q.grad.abs().sum())], dtype=torch.float64)
    dist.barrier()  # neither rank tears gloo down while its peer still talks to it
    dist.destroy_process_group()
    # The result is in shared memory. Leave without the interpreter's shutdown: gloo's background threads
    # can still be joinable there and abort the process (SIGABRT, "terminate called without an active exception").
    os._exit(0)


def test_two_ranks_reproduce_the_full_batch_loss():
    torch.manual_seed(0)
    q, p, n = (
        torch.randn(8, 16, dtype=torch.float64),
        torch.randn(8, 16, dtype=torch.float64),
        torch.randn(8, 2, 16, dtype=torch.float64),
    )
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    # Copies across the rank boundary: rows 0 and 5 share a positive, rows 2 and 6 a query, and row 7's
    # second negative is row 1's positive.
    keys = (
        torch.tensor([0, 1, 2, 3, 4, 5, 2, 7]),
        torch.tensor([10, 11, 12, 13, 14, 10, 16, 17]),
        torch.tensor([20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 11]),
    )
    out = torch.zeros(2, 2, dtype=torch.float64).share_memory_()
    mp.spawn(_worker, args=(2, _free_port(), q, p, n, labels, keys, out), nprocs=2, join=True)
    full = info_nce(q, p, n, temperature=0.05, labels=labels, keys=_keys(keys))
    assert float(full) != pytest.approx(float(info_nce(q, p, n, temperature=0.05, labels=labels)))
    assert float(out[:, 0].mean()) == pytest.approx(float(full), rel=1e-9), (
        "gathered candidates differ from the full batch"
    )
    assert (out[:, 1] > 0).all(), "no gradient reached the local queries"
