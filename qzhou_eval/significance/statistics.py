"""The main-score statistics of mteb's task types, computed for many resamples at once (one per row).

Each function takes arrays of shape (rows, units) and returns one value per row, defined exactly as
mteb defines the metric (scipy's Spearman/Pearson, sklearn's average precision with ties grouped,
mteb's best-threshold accuracy that never splits tied scores, sklearn's macro F1). Row 0 of the
identity resample therefore reproduces mteb's number; the other rows are bootstrap resamples or
randomisation swaps of the same units.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def mean_rows(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1)


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r per row; NaN where a row is constant (scipy's answer too)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=1) / denominator


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties sharing their average rank (as ``scipy.stats.rankdata``).

    Small non-negative integers (the doubled ranks a randomisation test swaps) are ranked by counting,
    with no sort: each row's histogram gives every value's average rank directly.
    """
    if np.issubdtype(values.dtype, np.integer) and values.ndim == 2:
        rows, top = values.shape[0], int(values.max()) + 1
        offset = (np.arange(rows) * top)[:, None]
        flat = (values + offset).ravel()
        histogram = np.bincount(flat, minlength=rows * top)
        # one running total over all rows; row r's starts after r * units values
        below = np.cumsum(histogram) - histogram - np.repeat(np.arange(rows) * values.shape[1], top)
        return (below + (histogram + 1) / 2.0)[flat].reshape(values.shape)
    return rankdata(values, axis=-1)


def weighted_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average-tie ranks each unit would get in a resample holding it ``counts`` times (one row per resample).

    Equal to ranking the resample itself, but sorts ``values`` once instead of once per resample.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    group = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
    last_of_group = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    through_group = np.cumsum(counts[:, order], axis=1)[:, last_of_group]
    in_group = np.diff(through_group, axis=1, prepend=0)
    group_rank = through_group - in_group + (in_group + 1) / 2.0
    ranks = np.empty(counts.shape, dtype=np.float64)
    ranks[:, order] = group_rank[:, group]
    return ranks


def weighted_pearson_rows(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson's r of (x, y) per row with unit weights ``counts`` (a bootstrap resample as multiplicities)."""
    total = counts.sum(axis=1, keepdims=True)
    xc = x - (counts * x).sum(axis=1, keepdims=True) / total
    yc = y - (counts * y).sum(axis=1, keepdims=True) / total
    denominator = np.sqrt((counts * xc * xc).sum(axis=1) * (counts * yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts * xc * yc).sum(axis=1) / denominator


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row: Pearson's r of the average-tie ranks, as ``scipy.stats.spearmanr``.

    ``x`` broadcast from one row (the gold side in a randomisation test) is ranked once.
    """
    x_ranks = np.broadcast_to(average_ranks(x[:1]), x.shape) if x.strides[0] == 0 else average_ranks(x)
    return pearson_rows(x_ranks, average_ranks(y))


def _sorted_by_score(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels in descending score order, cumulative true positives, and where each run of tied scores ends."""
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_labels = np.take_along_axis(labels, order, axis=1).astype(np.float64)
    group_end = np.ones_like(sorted_scores, dtype=bool)
    group_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    return sorted_labels, np.cumsum(sorted_labels, axis=1), group_end


def _histograms(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, units and positives at each integer score, highest score first: a sort by counting."""
    rows, top = scores.shape[0], int(scores.max()) + 1
    flat = (scores + (np.arange(rows) * top)[:, None]).ravel()
    units = np.bincount(flat, minlength=rows * top).reshape(rows, top)[:, ::-1]
    positives = np.bincount(flat, weights=labels.ravel(), minlength=rows * top).reshape(rows, top)[:, ::-1]
    return units, positives


def average_precision_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """sklearn's ``average_precision_score`` per row (higher score = positive; tied scores are one threshold).

    Integer scores (the ranks a randomisation test swaps) are sorted by counting.
    """
    if np.issubdtype(scores.dtype, np.integer):
        units, positives = _histograms(labels, scores)
        seen, true_pos = np.cumsum(units, axis=1), np.cumsum(positives, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(seen > 0, true_pos / np.where(seen > 0, seen, 1), 0.0)
            return (positives * precision).sum(axis=1) / true_pos[:, -1]
    _, true_pos, group_end = _sorted_by_score(labels, scores)
    ranks = np.arange(1, labels.shape[1] + 1, dtype=np.float64)
    tp_at_end = np.where(group_end, true_pos, 0.0)
    previous_end_tp = np.maximum.accumulate(
        np.concatenate([np.zeros((len(labels), 1)), tp_at_end[:, :-1]], axis=1), axis=1
    )
    gained = np.where(group_end, true_pos - previous_end_tp, 0.0)
    positives = true_pos[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (gained * true_pos / ranks).sum(axis=1) / positives


def best_accuracy_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """mteb's best-threshold accuracy per row (higher score = positive; a threshold never splits ties).

    mteb tries thresholds after each of the first n-1 sorted rows only, and starts from 0, so a
    threshold above every score ("all negative") is never counted; this does the same.
    """
    n = labels.shape[1]
    if np.issubdtype(scores.dtype, np.integer):
        units, positives = _histograms(labels, scores)
        seen, true_pos = np.cumsum(units, axis=1), np.cumsum(positives, axis=1)
        accuracy = (true_pos + (n - true_pos[:, -1:]) - (seen - true_pos)) / n
        return np.where((units > 0) & (seen < n), accuracy, 0.0).max(axis=1)
    sorted_labels, true_pos, group_end = _sorted_by_score(labels, scores)
    negatives_seen = np.cumsum(1.0 - sorted_labels, axis=1)
    remaining_negatives = negatives_seen[:, -1:] - negatives_seen
    accuracy = (true_pos + remaining_negatives) / n
    valid = group_end.copy()
    valid[:, -1] = False
    return np.where(valid, accuracy, 0.0).max(axis=1)


def _weighted_by_score(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray):
    """Per resample (rows of ``counts``), at the end of each run of tied scores in descending order of the
    original units: cumulative positives, cumulative units, and the resample's positives and units."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    weights = counts[:, order]
    true_pos = np.cumsum(weights * labels[order], axis=1)[:, ends]
    seen = np.cumsum(weights, axis=1)[:, ends]
    return true_pos, seen, true_pos[:, -1:], seen[:, -1:]


def weighted_average_precision(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """:func:`average_precision_rows` of each bootstrap resample given as unit multiplicities (one sort in all)."""
    true_pos, seen, positives, _ = _weighted_by_score(labels, scores, counts)
    gained = np.diff(true_pos, axis=1, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, true_pos / np.where(seen > 0, seen, 1), 0.0)
        return (gained * precision).sum(axis=1) / positives[:, 0]


def weighted_best_accuracy(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """:func:`best_accuracy_rows` of each resample given as multiplicities: thresholds between present runs of
    tied scores only (never above or below every unit of the resample, as mteb)."""
    true_pos, seen, positives, total = _weighted_by_score(labels, scores, counts)
    negatives_seen = seen - true_pos
    accuracy = (true_pos + (total - positives) - negatives_seen) / total
    valid = (seen > 0) & (seen < total)
    return np.where(valid, accuracy, 0.0).max(axis=1)


def macro_f1_rows(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """sklearn's ``f1_score(average="macro")`` per row, over the classes present in that row's labels or predictions."""
    rows, _ = labels.shape
    classes, inverse = np.unique(np.concatenate([labels, predictions], axis=1), return_inverse=True)
    inverse = inverse.reshape(rows, -1)
    true_idx, pred_idx = inverse[:, : labels.shape[1]], inverse[:, labels.shape[1] :]
    k = len(classes)
    offset = (np.arange(rows) * k)[:, None]
    true_count = np.bincount((true_idx + offset).ravel(), minlength=rows * k).reshape(rows, k)
    pred_count = np.bincount((pred_idx + offset).ravel(), minlength=rows * k).reshape(rows, k)
    hits = np.where(true_idx == pred_idx, true_idx + offset, -1).ravel()
    tp = np.bincount(hits[hits >= 0], minlength=rows * k).reshape(rows, k)
    present = (true_count + pred_count) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * tp / (true_count + pred_count), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)
