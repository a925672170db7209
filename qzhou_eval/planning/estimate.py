"""A task's cost from its counts, its token-length sample, the run's options and the model's shape.

Per side: ``L = min(prefix tokens + text tokens, max_length)`` for every sampled text, so truncation and the
attention's ``L**2`` come from the distribution. The side's texts are drawn from that sample (as many as it
has unique texts, at most ``_SIMULATED``) and cut into batches by the run's own batching rule, which gives
the padding. ``budget`` batching encodes each unique text once; ``reference`` batching every row.
vLLM and served models pack tokens without padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qzhou_eval.options import Batching
from qzhou_eval.planning.compute import ModelShape, Throughput
from qzhou_eval.planning.counts import SideCounts, TaskCounts
from qzhou_eval.planning.lengths import LengthSample

_SIMULATED = 20_000  # texts drawn per side to simulate batching: enough that the length density matches a suite's


@dataclass(frozen=True)
class SidePlan:
    side: str
    texts: float  # rows mteb asks for
    encoded: float  # forward-pass rows (unique texts under budget batching)
    tokens: float  # real tokens after the prefix and truncation
    padded_tokens: float  # tokens computed, padding included
    squared: float  # sum over encoded texts of (padded) length**2: the attention's cost
    truncated: float  # share of texts longer than max_length
    lengths_from: str


@dataclass(frozen=True)
class TaskPlan:
    task: str
    task_type: str
    language: str
    sides: tuple[SidePlan, ...]
    flops: float
    seconds: float | None
    local_seconds: float | None  # at the throughput measured on this machine, if measured
    cache_bytes: float
    done: bool = False

    def total(self, field: str) -> float:
        return sum(getattr(s, field) for s in self.sides)


def plan_side(
    counts: SideCounts,
    sample: LengthSample,
    overhead: int,
    max_length: int,
    batching: Batching,
    seed: int,
) -> SidePlan:
    raw = overhead + sample.tokens
    lengths = np.minimum(raw, max_length)
    encoded = counts.texts if batching.reference else counts.unique_texts
    efficiency, squared_ratio = _padding(lengths, sample.chars, encoded, batching, seed)
    mean, mean_sq = float(lengths.mean()), float((lengths**2).mean())
    tokens = encoded * mean
    return SidePlan(
        counts.side,
        counts.texts,
        encoded,
        tokens,
        tokens / efficiency,
        encoded * mean_sq * squared_ratio,
        float((raw > max_length).mean()),
        sample.source,
    )


def _padding(
    lengths: np.ndarray, chars: np.ndarray, encoded: float, batching: Batching, seed: int
) -> tuple[float, float]:
    """(real / computed tokens, computed / real sum of squared lengths) of the run's batching over ``encoded``
    texts drawn from the sample."""
    if batching.packed or encoded < 1:
        return 1.0, 1.0
    from qzhou_eval.encoder.batching import cut_by_budget, cut_fixed_rows

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(lengths), size=int(min(max(encoded, 1), _SIMULATED)))
    drawn, drawn_chars = lengths[pick], chars[pick]
    if not batching.fixed_rows:  # the token budget: longest first
        ordered = np.sort(drawn)[::-1]
        batches = cut_by_budget(
            ordered.astype(int).tolist(),
            batching.max_rows,
            batching.max_tokens,
            multiple=batching.pad_to_multiple_of or 1,
        )
    else:  # fixed rows in descending character order (the reference's and the fixed policy's order)
        ordered = drawn[np.argsort(-drawn_chars, kind="stable")]
        batches = cut_fixed_rows(len(ordered), batching.max_rows)
    widths = [(batching.padded_width(int(ordered[b].max())), len(b)) for b in batches]
    computed = sum(w * n for w, n in widths)
    computed_sq = sum(w * w * n for w, n in widths)
    return float(drawn.sum() / computed), float(computed_sq / (drawn**2).sum())


def plan_task(
    counts: TaskCounts,
    sides: list[tuple[SideCounts, LengthSample, int]],
    shape: ModelShape,
    max_length: int,
    batching: Batching,
    throughput: Throughput | None,
    local: Throughput | None,
    gpus: int,
    bytes_per_vector: float,
    done: bool,
) -> TaskPlan:
    planned = tuple(
        plan_side(side, sample, overhead, max_length, batching, seed=i)
        for i, (side, sample, overhead) in enumerate(sides)
    )
    padded = sum(s.padded_tokens for s in planned)
    flops = shape.flops(padded, sum(s.squared for s in planned))
    cached = 0.0 if batching.reference else sum(s.encoded for s in planned) * bytes_per_vector
    return TaskPlan(
        counts.task,
        counts.task_type,
        counts.language,
        planned,
        flops,
        throughput.seconds(flops, padded, gpus) if throughput else None,
        local.seconds(flops, padded, 1) if local else None,
        cached,
        done,
    )
