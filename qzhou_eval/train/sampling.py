"""Data grouping: every batch from one dataset, datasets drawn with probability proportional to n^alpha.

Stage 2 of the recipe fixes the retrieval group's total share (0.72 published) and shares the rest
among the other datasets, each group weighted by n^alpha inside. Each dataset is read sequentially
with a remembered position, so a run resumed from a checkpoint continues where it stopped. With
``shuffle`` (the trainer's default) "sequentially" means through a seeded permutation of the rows, a new
one on each pass: files written in source order (qrels order, one row per relevant document) otherwise
put a query's rows, and the claims written from one abstract, into the same batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from qzhou_eval.errors import InvalidOptionError


def dataset_weights(
    sizes: Mapping[str, int],
    alpha: float,
    retrieval: Sequence[str] | None = None,
    retrieval_ratio: float | None = None,
) -> dict[str, float]:
    """Sampling probability of each dataset.

    Args:
        sizes: dataset name -> number of rows.
        alpha: exponent; 1 = proportional to size, 0 = uniform, 0.5 as gte/mgte.
        retrieval: names of the retrieval group (stage 2).
        retrieval_ratio: total probability of that group (0.72 published); the rest goes to the others.

    Returns:
        name -> probability, summing to 1.

    Raises:
        InvalidOptionError: empty or non-positive sizes, alpha < 0, a ratio outside (0, 1), unknown
        retrieval names, or a ratio given with an empty group on either side.

    Example:
        >>> dataset_weights({"a": 100, "b": 25}, alpha=0.5)
        {'a': 0.6666666666666666, 'b': 0.3333333333333333}
    """
    if not sizes:
        raise InvalidOptionError("dataset_weights needs at least one dataset")
    bad = {name: n for name, n in sizes.items() if not isinstance(n, (int, np.integer)) or n <= 0}
    if bad:
        raise InvalidOptionError(
            f"dataset sizes must be positive integers; got {bad} (an empty dataset cannot be sampled)"
        )
    if alpha < 0:
        raise InvalidOptionError(f"alpha must be >= 0, got {alpha}")
    powered = {name: float(n) ** alpha for name, n in sizes.items()}

    def normalised(names: Sequence[str], total: float) -> dict[str, float]:
        mass = sum(powered[n] for n in names)
        return {n: total * powered[n] / mass for n in names}

    if retrieval_ratio is None:
        return normalised(list(sizes), 1.0)
    if not 0.0 < retrieval_ratio < 1.0:
        raise InvalidOptionError(f"retrieval_ratio must be in (0, 1), got {retrieval_ratio}")
    group = list(retrieval or [])
    unknown = sorted(set(group) - set(sizes))
    if unknown:
        raise InvalidOptionError(f"retrieval names {unknown} are not among the datasets {sorted(sizes)}")
    others = [n for n in sizes if n not in set(group)]
    if not group or not others:
        raise InvalidOptionError(
            "retrieval_ratio needs datasets both inside and outside the retrieval group "
            f"(retrieval={group}, others={others})"
        )
    return {**normalised(group, retrieval_ratio), **normalised(others, 1.0 - retrieval_ratio)}


@dataclass
class GroupedSamplerState:
    """What a resumed run needs: per-dataset read positions, batches drawn, the RNG state."""

    positions: dict[str, int] = field(default_factory=dict)
    step: int = 0
    rng: dict | None = None


class GroupedBatches:
    """Yields (dataset name, row indices) batches: one dataset per batch, read sequentially.

    A dataset is drawn by ``weights``; its next ``batch_size`` rows are taken from its remembered
    position, wrapping to the start when it runs out (with ``shuffle``, positions index a permutation
    seeded by (seed, dataset, pass)). ``state_dict``/``load_state_dict`` resume exactly.

    Raises:
        InvalidOptionError: a batch larger than a dataset (grouped mode needs whole batches).
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        weights: Mapping[str, float],
        batch_size: int | Mapping[str, int],
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        self.batch_sizes = (
            {n: int(batch_size[n]) for n in sizes}
            if isinstance(batch_size, Mapping)
            else {n: int(batch_size) for n in sizes}
        )
        if any(b <= 0 for b in self.batch_sizes.values()):
            raise InvalidOptionError(f"batch sizes must be positive, got {self.batch_sizes}")
        too_small = {n: s for n, s in sizes.items() if s < self.batch_sizes[n]}
        if too_small:
            sizes_note = (
                batch_size if not isinstance(batch_size, Mapping) else {n: self.batch_sizes[n] for n in too_small}
            )
            raise InvalidOptionError(
                f"batch size {sizes_note} is larger than dataset(s) {too_small}; in grouped mode every batch comes "
                "from one dataset, so lower the batch size or drop/merge those datasets"
            )
        missing = set(sizes) ^ set(weights)
        if missing:
            raise InvalidOptionError(f"sizes and weights name different datasets: {sorted(missing)}")
        self.names = list(sizes)
        self.sizes = dict(sizes)
        self.probabilities = np.array([weights[n] for n in self.names], dtype=np.float64)
        self.probabilities /= self.probabilities.sum()
        self.batch_size = batch_size if not isinstance(batch_size, Mapping) else dict(self.batch_sizes)
        self.rng = np.random.default_rng(seed)
        self.seed, self.shuffle = seed, shuffle
        self._orders: dict[str, tuple[int, np.ndarray]] = {}  # dataset -> (pass, row order)
        self.state = GroupedSamplerState(positions={n: 0 for n in self.names})

    def next_batch(self) -> tuple[str, list[int]]:
        name = self.names[int(self.rng.choice(len(self.names), p=self.probabilities))]
        start, count = self.state.positions[name], self.batch_sizes[name]
        rows = [self._row(name, start + i) for i in range(count)]
        self.state.positions[name] = start + count  # rows read so far; the pass is position // size
        self.state.step += 1
        return name, rows

    def _row(self, name: str, position: int) -> int:
        size = self.sizes[name]
        if not self.shuffle:
            return position % size
        current = position // size
        cached = self._orders.get(name)
        if cached is None or cached[0] != current:  # the current pass's order only, per dataset
            order = np.random.default_rng([self.seed, self.names.index(name), current]).permutation(size)
            self._orders[name] = cached = (current, order)
        return int(cached[1][position % size])

    def take(self, steps: int) -> Iterator[tuple[str, list[int]]]:
        for _ in range(steps):
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {
            "positions": dict(self.state.positions),
            "step": self.state.step,
            "rng": self.rng.bit_generator.state,
            "names": list(self.names),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("names") != self.names or state.get("batch_size") != self.batch_size:
            raise InvalidOptionError(
                "the checkpoint's sampler was built for other datasets or batch size "
                f"({state.get('names')}, {state.get('batch_size')}); resume with the same config"
            )
        self.state = GroupedSamplerState(positions=dict(state["positions"]), step=int(state["step"]))
        self.rng.bit_generator.state = state["rng"]
        self.seed, self.shuffle = state.get("seed", self.seed), state.get("shuffle", False)
        self._orders = {}
