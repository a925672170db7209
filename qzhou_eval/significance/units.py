"""Per-unit evidence behind one task's main score: typed, serialisable, and able to rebuild the score.

A task's main score is mteb's mean over its (split, subset) entries; each entry is a statistic of
units (queries, pairs, test items, clustering resamples). A :class:`UnitGroup` holds one entry's
units: the gold side (shared by every run of the task) and the system side (this run's outputs),
with the unit axis last. ``statistic`` evaluates the entry's metric on any resample of the units,
so the same object serves the point score, the paired bootstrap and the randomisation test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from qzhou_eval.significance import statistics as st

FORMAT = "qzhou-eval task units v1"


@dataclass(frozen=True)
class Kind:
    """How a kind of main score is computed from units, and how two runs' units may be exchanged."""

    description: str  # for the docs and the report: what is resampled and recomputed
    statistic: Callable[[np.ndarray | None, np.ndarray], np.ndarray]  # (gold rows, system rows) -> one value per row
    exchangeable: Callable[
        [np.ndarray], np.ndarray
    ]  # a form of the system side, same statistic, same scale across runs
    # the statistic of bootstrap resamples given as unit multiplicities (gold, system, counts): no per-row sort
    on_counts: Callable[[np.ndarray | None, np.ndarray, np.ndarray], np.ndarray] | None = None


def _identity(system: np.ndarray) -> np.ndarray:
    return system


def _doubled_ranks(system: np.ndarray) -> np.ndarray:
    """2 x average-tie ranks (integers) along the unit axis: a rank statistic is unchanged, two models' scores
    become comparable, and a swapped row is re-ranked by counting."""
    return np.rint(2.0 * rankdata(system, axis=-1)).astype(np.int64)


def _mean_on_counts(gold: np.ndarray | None, system: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ system / system.shape[-1]


def _spearman_on_counts(gold: np.ndarray | None, system: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return st.weighted_pearson_rows(st.weighted_ranks(gold, counts), st.weighted_ranks(system, counts), counts)


def _pearson_on_counts(gold: np.ndarray | None, system: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return st.weighted_pearson_rows(np.broadcast_to(gold, counts.shape), np.broadcast_to(system, counts.shape), counts)


def _standardised(system: np.ndarray) -> np.ndarray:
    """z-scores along the unit axis: Pearson's r is unchanged, and two models' scales become comparable."""
    spread = system.std(axis=-1, keepdims=True)
    return (system - system.mean(axis=-1, keepdims=True)) / np.where(spread > 0, spread, 1.0)


def _best_of_functions(metric: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def statistic(gold: np.ndarray | None, system: np.ndarray) -> np.ndarray:
        # system rows: (rows, functions, units); mteb's max_<metric> is the best similarity function
        return np.max([metric(gold, system[:, f, :]) for f in range(system.shape[1])], axis=0)

    return statistic


def _best_of_functions_on_counts(metric):
    def on_counts(gold: np.ndarray | None, system: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.max([metric(gold, system[f], counts) for f in range(system.shape[0])], axis=0)

    return on_counts


def _mean_over_experiments(gold: np.ndarray | None, system: np.ndarray) -> np.ndarray:
    return np.mean([st.macro_f1_rows(gold, system[:, e, :]) for e in range(system.shape[1])], axis=0)


KINDS: dict[str, Kind] = {
    "mean": Kind(
        "mean of per-unit values; bootstrap and sign-flip randomisation of per-unit differences",
        lambda gold, system: st.mean_rows(system),
        _identity,
        _mean_on_counts,
    ),
    "spearman": Kind(
        "Spearman's rho recomputed on each resample of pairs; randomisation swaps the two runs' ranks per pair",
        lambda gold, system: st.spearman_rows(gold, system),
        _doubled_ranks,
        _spearman_on_counts,
    ),
    "pearson": Kind(
        "Pearson's r recomputed on each resample of pairs; randomisation swaps the two runs' "
        "standardised scores per pair",
        lambda gold, system: st.pearson_rows(gold, system),
        _standardised,
        _pearson_on_counts,
    ),
    "best_ap": Kind(
        "average precision of the best similarity function, recomputed on each resample of pairs; "
        "randomisation swaps the two runs' ranks per pair",
        _best_of_functions(st.average_precision_rows),
        _doubled_ranks,
        _best_of_functions_on_counts(st.weighted_average_precision),
    ),
    "best_accuracy": Kind(
        "best-threshold accuracy of the best similarity function, recomputed on each resample "
        "of pairs; randomisation swaps the two runs' ranks per pair",
        _best_of_functions(st.best_accuracy_rows),
        _doubled_ranks,
        _best_of_functions_on_counts(st.weighted_best_accuracy),
    ),
    "macro_f1": Kind(
        "macro F1 averaged over the classifier experiments, recomputed on each resample of test items; "
        "randomisation swaps each item's predictions",
        _mean_over_experiments,
        _identity,
    ),
}


@dataclass(frozen=True)
class UnitGroup:
    """One (split, subset) entry of a result: its units and the metric that makes its main score."""

    split: str
    subset: str
    kind: str
    ids: tuple[str, ...]
    gold: np.ndarray | None  # (units,) shared by every run over the same data
    system: np.ndarray  # (units,) or (functions/experiments, units): this run's outputs
    decimals: int | None = None  # mteb rounds some means (retrieval) before reporting them
    unit: str = "unit"  # what one unit is: query, pair, test item, resample, text

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown unit kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.system.shape[-1] != len(self.ids) or (self.gold is not None and self.gold.shape != (len(self.ids),)):
            raise ValueError(f"{self.split}/{self.subset}: unit arrays do not match {len(self.ids)} unit ids")

    @property
    def size(self) -> int:
        return len(self.ids)

    def rows(self, system: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Gold and system values of the resamples ``idx`` (rows, units): system rows keep an inner axis if any."""
        gold = None if self.gold is None else self.gold[idx]
        picked = system[..., idx]  # (..., rows, units)
        return gold, (np.moveaxis(picked, -2, 0) if system.ndim == 2 else picked)

    def statistic(self, idx: np.ndarray, system: np.ndarray | None = None) -> np.ndarray:
        """The entry's metric on each resample (row of ``idx``), for this run's units or ``system`` given."""
        gold, rows = self.rows(self.system if system is None else system, idx)
        return KINDS[self.kind].statistic(gold, rows)

    def on_counts(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`statistic` of resamples given as unit multiplicities (rows of ``counts``)."""
        return KINDS[self.kind].on_counts(self.gold, self.system, counts)

    def point(self) -> float:
        """The entry's main score as mteb reports it."""
        value = float(self.statistic(np.arange(self.size)[None, :])[0])
        return round(value, self.decimals) if self.decimals is not None else value

    def pairing_key(self) -> str:
        """Identity of the units (kind, ids, gold): two runs are paired only over equal keys."""
        digest = hashlib.sha256(json.dumps([self.split, self.subset, self.kind, list(self.ids)]).encode())
        if self.gold is not None:
            digest.update(np.ascontiguousarray(self.gold, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def as_record(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "subset": self.subset,
            "kind": self.kind,
            "ids": list(self.ids),
            "gold": None if self.gold is None else self.gold.tolist(),
            "system": self.system.tolist(),
            "decimals": self.decimals,
            "unit": self.unit,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> UnitGroup:
        gold = None if data["gold"] is None else np.asarray(data["gold"], dtype=np.float64)
        return cls(
            data["split"],
            data["subset"],
            data["kind"],
            tuple(map(str, data["ids"])),
            gold,
            np.asarray(data["system"], dtype=np.float64),
            data["decimals"],
            str(data["unit"]),
        )


@dataclass(frozen=True)
class TaskUnits:
    """Every unit behind one task's main score (mean over its groups, as mteb's ``get_score``)."""

    task: str
    main_metric: str
    groups: tuple[UnitGroup, ...]

    @property
    def size(self) -> int:
        return sum(g.size for g in self.groups)

    @property
    def unit(self) -> str:
        return self.groups[0].unit if self.groups else "unit"

    def point(self) -> float:
        return float(np.mean([g.point() for g in self.groups]))

    def select(self, splits: tuple[str, ...], subsets: tuple[str, ...] | None) -> TaskUnits:
        """The groups a score convention averages over; raises ValueError when one of them is missing."""
        chosen = tuple(g for g in self.groups if g.split in splits and (subsets is None or g.subset in subsets))
        wanted_splits = {g.split for g in chosen}
        if wanted_splits != set(splits) or (subsets is not None and {g.subset for g in chosen} != set(subsets)):
            raise ValueError(f"{self.task}: the units do not cover splits {list(splits)} / subsets {subsets}")
        return TaskUnits(self.task, self.main_metric, chosen)

    def to_bytes(self) -> bytes:
        body = {
            "format": FORMAT,
            "task": self.task,
            "main_metric": self.main_metric,
            "groups": [g.as_record() for g in self.groups],
        }
        return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=6, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskUnits:
        """Raises ValueError on anything that is not a units file of this format."""
        try:
            body = json.loads(gzip.decompress(data))
            if body.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT!r} file")
            return cls(body["task"], body["main_metric"], tuple(UnitGroup.from_record(g) for g in body["groups"]))
        except (OSError, EOFError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"unreadable units file: {exc}") from exc
