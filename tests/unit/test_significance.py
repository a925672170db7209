"""Paired statistics against slow reference implementations (scipy, sklearn, mteb's own loops) on generated inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import average_precision_score, f1_score

from qzhou_eval.significance import paired
from qzhou_eval.significance import statistics as st
from qzhou_eval.significance.units import KINDS, TaskUnits, UnitGroup


def _mteb_best_accuracy(scores, labels) -> float:
    from mteb.abstasks.pair_classification import AbsTaskPairClassification

    acc, _ = AbsTaskPairClassification._find_best_acc_and_threshold(None, list(scores), np.asarray(labels), True)
    return acc


small_ints = hs.lists(hs.integers(0, 4), min_size=3, max_size=25)


@settings(max_examples=60, deadline=None)
@given(hs.data())
def test_row_statistics_equal_the_libraries_mteb_uses(data):
    n = data.draw(hs.integers(3, 25))
    ties = hs.integers(0, 5).map(float)  # coarse values: many ties, the hard case
    x = np.array(data.draw(hs.lists(ties, min_size=n, max_size=n)))
    y = np.array(data.draw(hs.lists(ties, min_size=n, max_size=n)))
    labels = np.array(data.draw(hs.lists(hs.integers(0, 1), min_size=n, max_size=n)))
    if len(set(x)) > 1 and len(set(y)) > 1:
        assert st.spearman_rows(x[None], y[None])[0] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
        assert st.pearson_rows(x[None], y[None])[0] == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    if labels.any():
        assert st.average_precision_rows(labels[None], y[None])[0] == pytest.approx(
            average_precision_score(labels, y), abs=1e-12
        )
    assert st.best_accuracy_rows(labels[None], y[None])[0] == pytest.approx(_mteb_best_accuracy(y, labels), abs=1e-12)
    predictions = np.array(data.draw(hs.lists(hs.integers(0, 3), min_size=n, max_size=n)))
    classes = np.array(data.draw(hs.lists(hs.integers(0, 3), min_size=n, max_size=n)))
    assert st.macro_f1_rows(classes[None], predictions[None])[0] == pytest.approx(
        f1_score(classes, predictions, average="macro"), abs=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.integers(0, 6), min_size=2, max_size=30), hs.integers(0, 2**32 - 1))
def test_ranks_by_counting_and_by_multiplicity_equal_rankdata(values, seed):
    values = np.array(values)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 13, size=(5, len(values)))
    assert np.array_equal(st.average_ranks(rows), rankdata(rows, axis=1))
    idx = rng.integers(0, len(values), size=(7, len(values)))
    counts = np.stack([np.bincount(r, minlength=len(values)) for r in idx])
    ranks = st.weighted_ranks(values.astype(float), counts)
    for row, r in zip(idx, ranks):
        assert np.allclose(r[row], rankdata(values[row]))


def _group(kind: str, n: int, rng, inner: int = 0) -> tuple[UnitGroup, UnitGroup]:
    ids = tuple(str(i) for i in range(n))
    gold = None
    if kind in ("spearman", "pearson"):
        gold = rng.integers(0, 6, n).astype(float)
    elif kind in ("best_ap", "best_accuracy"):
        gold = (rng.random(n) < 0.4).astype(float)
        gold[:2] = [0.0, 1.0]
    elif kind == "macro_f1":
        gold = rng.integers(0, 3, n).astype(float)
    shape = (inner, n) if inner else (n,)
    if kind == "macro_f1":
        make = lambda: rng.integers(0, 3, shape).astype(float)  # noqa: E731
    elif kind == "mean":
        make = lambda: rng.random(shape)  # noqa: E731
    else:
        make = lambda: np.round(rng.normal(gold, 1.0, shape), 1)  # noqa: E731
    return UnitGroup("test", "default", kind, ids, gold, make()), UnitGroup("test", "default", kind, ids, gold, make())


def _reference_statistic(kind: str, gold, system) -> float:
    """The metric for one resample, by the libraries mteb itself calls, one function at a time."""
    if kind == "mean":
        return float(np.mean(system))
    if kind == "spearman":
        return spearmanr(gold, system).statistic
    if kind == "pearson":
        return pearsonr(gold, system).statistic
    if kind == "best_ap":
        return max(average_precision_score(gold, s) if gold.any() else np.nan for s in system)
    if kind == "best_accuracy":
        return max(_mteb_best_accuracy(s, gold.astype(int)) for s in system)
    return float(np.mean([f1_score(gold, p, average="macro") for p in system]))


INNER = {"best_ap": 3, "best_accuracy": 2, "macro_f1": 4}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bootstrap_equals_a_slow_loop_over_the_same_resamples(kind):
    rng = np.random.default_rng(7)
    base, new = _group(kind, 23, rng, INNER.get(kind, 0))
    fast = paired.bootstrap_deltas(base, new, np.random.default_rng(3), 200)
    idx = np.random.default_rng(3).integers(0, 23, size=(200, 23))  # one draw of everything: the same stream
    slow = [
        _reference_statistic(kind, None if new.gold is None else new.gold[i], new.system[..., i])
        - _reference_statistic(kind, None if base.gold is None else base.gold[i], base.system[..., i])
        for i in idx
    ]
    assert np.allclose(fast, slow, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_randomisation_equals_a_slow_loop_over_the_same_swaps(kind):
    rng = np.random.default_rng(11)
    base, new = _group(kind, 19, rng, INNER.get(kind, 0))
    masks = rng.integers(0, 2, size=(60, 19)).astype(bool)
    fast = paired.randomisation_deltas(base, new, masks)
    form = KINDS[kind].exchangeable
    eb, en = form(base.system), form(new.system)
    slow = []
    for mask in masks:
        b, n = np.where(mask, en, eb), np.where(mask, eb, en)
        slow.append(_reference_statistic(kind, new.gold, n) - _reference_statistic(kind, base.gold, b))
    assert np.allclose(fast, slow, atol=1e-12, equal_nan=True)
    # the exchangeable form never changes a run's own score
    assert _reference_statistic(kind, base.gold, eb) == pytest.approx(base.point(), abs=1e-12, nan_ok=True)


def test_exact_randomisation_enumerates_every_assignment():
    rng = np.random.default_rng(5)
    base, new = _group("mean", 8, rng)
    result = paired.paired_test(_units(base), _units(new), resamples=1000)
    assert result.exact
    d = new.system - base.system
    observed = abs(d.mean())
    signs = np.array(list(itertools.product([1, -1], repeat=8)))
    expected = np.mean(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12)
    assert result.p_value == pytest.approx(expected)


def _units(*groups: UnitGroup) -> TaskUnits:
    return TaskUnits("Task", "metric", tuple(groups))


def test_identical_runs_are_no_change_and_a_clear_shift_is_found():
    rng = np.random.default_rng(0)
    base, _ = _group("spearman", 300, rng)
    same = paired.paired_test(_units(base), _units(base), resamples=500)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    noisy = UnitGroup("test", "default", "spearman", base.ids, base.gold, base.system + rng.normal(0, 2.0, 300))
    worse = paired.paired_test(_units(base), _units(noisy), resamples=500)
    assert worse.delta < 0 and worse.ci_high < 0 and worse.p_value < 0.01


def test_units_pair_by_id_and_refuse_other_data():
    rng = np.random.default_rng(1)
    base, new = _group("spearman", 30, rng)
    order = np.arange(30)[::-1]
    shuffled = UnitGroup("test", "default", "spearman", tuple(np.array(base.ids)[order]), new.gold[order],
                         new.system[order])  # fmt: skip
    assert paired.paired_test(_units(base), _units(shuffled), resamples=50).delta == pytest.approx(
        new.point() - base.point()
    )
    other_gold = UnitGroup("test", "default", "spearman", base.ids, base.gold + 1, new.system)
    with pytest.raises(paired.NotPaired, match="gold"):
        paired.paired_test(_units(base), _units(other_gold))
    fewer = UnitGroup("test", "default", "spearman", base.ids[:-1], base.gold[:-1], new.system[:-1])
    with pytest.raises(paired.NotPaired, match="different pairs|different units"):
        paired.paired_test(_units(base), _units(fewer))


def test_benjamini_hochberg_equals_the_textbook_step_up():
    rng = np.random.default_rng(2)
    p = rng.random(17) ** 3
    m = len(p)
    order = np.argsort(p)
    expected = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):  # step-up: q_(i) = min_{j >= i} p_(j) m / j
        running = min(running, p[order[rank - 1]] * m / rank)
        expected[order[rank - 1]] = running
    assert np.allclose(paired.benjamini_hochberg(p), expected)


def test_units_survive_their_file_format():
    rng = np.random.default_rng(3)
    groups = [_group(kind, 9, rng, INNER.get(kind, 0))[0] for kind in sorted(KINDS)]
    units = _units(*groups)
    again = TaskUnits.from_bytes(units.to_bytes())
    assert [g.point() for g in again.groups] == [g.point() for g in groups]
    with pytest.raises(ValueError, match="units file"):
        TaskUnits.from_bytes(b"not gzip")
