"""Per-unit evidence of a task, from mteb's saved predictions and the task's gold data.

Called right after mteb evaluated the task (its data still loaded). Every :class:`TaskUnits` built
here is checked against the main score mteb wrote: a task whose units do not rebuild that score
(to 1e-9) gets none, and its comparisons fall back to point deltas; units are never trusted on faith.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from typing import Any

import numpy as np
from scipy.stats import rankdata

from qzhou_eval.errors import UnsupportedMetric
from qzhou_eval.significance.units import TaskUnits, UnitGroup

logger = logging.getLogger(__name__)

TOLERANCE = 1e-9
_PYTREC = {
    "ndcg_at": "ndcg_cut_{k}",
    "map_at": "map_cut_{k}",
    "recall_at": "recall_{k}",
    "precision_at": "P_{k}",
    "hit_rate_at": "success_{k}",
}
# PairClassification: mteb's name, prediction key, higher-is-similar (distances are negated by mteb's sign)
_PAIR_FUNCTIONS = [
    ("similarity", "similarity_scores", 1.0),
    ("cosine", "cosine_scores", 1.0),
    ("manhattan", "manhattan_distances", -1.0),
    ("euclidean", "euclidean_distances", -1.0),
    ("dot", "dot_scores", 1.0),
]


def split_data(task, subset: str, split: str):
    """The task's data for one entry, found the way mteb's ``evaluate`` finds it."""
    dataset = task.dataset
    data = dataset if (subset not in dataset and subset == "default") else dataset[subset]
    return data[split]


def task_units(task, result, predictions: dict[str, Any]) -> TaskUnits:
    """Units of every (split, subset) entry of ``result``; raises UnsupportedMetric or ValueError.

    ``predictions``: the JSON mteb wrote with ``prediction_folder`` ({subset: {split: ...}}).
    """
    metric = task.metadata.main_score
    groups = []
    for split, entries in result.scores.items():
        for entry in entries:
            if not entry.get("languages"):
                continue  # mteb's get_score skips these too
            subset = entry["hf_subset"]
            group = _group(task, metric, split, subset, entry, predictions.get(subset, {}).get(split))
            expected = float(entry["main_score"])
            if not math.isclose(group.point(), expected, rel_tol=0.0, abs_tol=TOLERANCE):
                raise ValueError(
                    f"{task.metadata.name} {split}/{subset}: units give {metric} {group.point()!r}, "
                    f"mteb wrote {expected!r}"
                )
            groups.append(group)
    if not groups:
        raise ValueError(f"{task.metadata.name}: the result has no scored entry")
    return TaskUnits(task.metadata.name, metric, tuple(groups))


def _group(task, metric: str, split: str, subset: str, entry: dict, predictions: Any) -> UnitGroup:
    from mteb.abstasks import (
        AbsTaskClassification,
        AbsTaskClustering,
        AbsTaskPairClassification,
        AbsTaskRetrieval,
        AbsTaskSTS,
    )
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy
    from mteb.abstasks.text.summarization import AbsTaskSummarization

    if isinstance(task, AbsTaskClustering | AbsTaskClusteringLegacy):
        return _clustering(metric, split, subset, entry)  # resample scores are in the result itself
    if predictions is None:
        raise ValueError(f"no saved predictions for {split}/{subset}")
    if isinstance(task, AbsTaskRetrieval):
        return _retrieval(task, metric, split, subset, predictions)
    if isinstance(task, AbsTaskSTS):
        return _sts(task, metric, split, subset, predictions)
    if isinstance(task, AbsTaskPairClassification):
        return _pairs(task, metric, split, subset, predictions)
    if isinstance(task, AbsTaskClassification) and not task.is_cross_validation:
        return _classification(task, metric, split, subset, predictions)
    if isinstance(task, AbsTaskSummarization):
        return _summarization(metric, split, subset, predictions)
    raise UnsupportedMetric(f"{type(task).__name__} tasks have no per-unit statistics yet")


def _retrieval(task, metric: str, split: str, subset: str, results: dict[str, dict[str, float]]) -> UnitGroup:
    import pytrec_eval
    from mteb._evaluators.retrieval_metrics import mrr

    qrels = {q: docs for q, docs in split_data(task, subset, split)["relevant_docs"].items() if len(docs)}
    results = {q: dict(docs) for q, docs in results.items()}
    base = metric.removeprefix("max_over_subqueries_")
    if task.ignore_identical_ids:
        for qid, docs in results.items():
            docs.pop(qid, None)
    if base != metric:  # mteb merges the results as evaluated (skip_first_result applies to its own scores only)
        results, qrels = _merge_subqueries(results, qrels)
    elif task.skip_first_result:
        results = {q: dict(sorted(d.items(), key=lambda x: x[1], reverse=True)[1:]) for q, d in results.items()}
    match = re.fullmatch(r"(ndcg_at|map_at|recall_at|precision_at|hit_rate_at|mrr_at)_(\d+)|accuracy", base)
    if match is None:
        raise UnsupportedMetric(f"retrieval metric {metric!r} has no per-query decomposition here")
    if base.startswith("mrr_at"):
        k = int(match.group(2))
        values = mrr(qrels, results, [k])[f"MRR@{k}"]
        return UnitGroup(split, subset, "mean", tuple(results), None, np.asarray(values, float), unit="query")
    measure = "recall_1" if base == "accuracy" else _PYTREC[match.group(1)].format(k=match.group(2))
    name, _, k = measure.rpartition("_")
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {f"{name}.{k}"}).evaluate(results)
    ids = tuple(per_query)
    values = np.asarray([per_query[q][measure] for q in ids], dtype=np.float64)
    return UnitGroup(split, subset, "mean", ids, None, values, decimals=5, unit="query")


def _merge_subqueries(results: dict, qrels: dict) -> tuple[dict, dict]:
    """mteb's max-over-subqueries merge: ``<id>_<n>`` queries become ``<id>``, each doc at its best score."""
    merged_results: dict[str, dict[str, float]] = {}
    merged_qrels: dict[str, dict[str, int]] = {}
    for query_id in qrels:
        base = "_".join(query_id.split("_")[:-1])
        docs = merged_results.setdefault(base, {})
        for doc_id, score in results[query_id].items():
            docs[doc_id] = max(score, docs[doc_id]) if doc_id in docs else score
        merged_qrels[base] = qrels[query_id]
    return merged_results, merged_qrels


def _sts(task, metric: str, split: str, subset: str, predictions: dict) -> UnitGroup:
    source = {
        "cosine_spearman": "cosine_scores",
        "cosine_pearson": "cosine_scores",
        "spearman": "similarity_scores",
        "pearson": "similarity_scores",
        "manhattan_spearman": "manhattan_distances",
        "euclidean_spearman": "euclidean_distances",
    }.get(metric)
    if source is None:
        raise UnsupportedMetric(f"STS metric {metric!r} has no per-pair form here")
    data = split_data(task, subset, split)
    gold = np.asarray([task._normalize(x) for x in data["score"]], dtype=np.float64)
    pred = predictions[source] if predictions.get(source) is not None else predictions["cosine_scores"]
    kind = "pearson" if metric.endswith("pearson") else "spearman"
    return UnitGroup(split, subset, kind, tuple(map(str, range(len(gold)))), gold, np.asarray(pred, float), unit="pair")


def _pairs(task, metric: str, split: str, subset: str, predictions: dict) -> UnitGroup:
    data = split_data(task, subset, split)
    labels = data[task.label_column_name]
    labels = labels[0] if len(labels) == 1 and isinstance(labels[0], list) else labels  # mteb's v1 single-row form
    best, _, what = metric.partition("_")
    if what not in ("ap", "accuracy"):
        raise UnsupportedMetric(f"pair-classification metric {metric!r} has no per-pair form here")
    functions = _PAIR_FUNCTIONS if best == "max" else [f for f in _PAIR_FUNCTIONS if f[0] == best]
    scores = np.asarray([np.asarray(predictions[key], dtype=np.float64) * sign for _, key, sign in functions])
    # functions that order the pairs identically (cosine, dot, -euclidean on unit vectors) give the same metric
    # on every resample: one of them is enough for the maximum
    _, keep = np.unique(rankdata(scores, axis=1), axis=0, return_index=True)
    scores = scores[np.sort(keep)]
    return UnitGroup(
        split,
        subset,
        f"best_{what}",
        tuple(map(str, range(len(labels)))),
        np.asarray(labels, dtype=np.float64),
        scores,
        unit="pair",
    )


def _classification(task, metric: str, split: str, subset: str, experiments: list[list]) -> UnitGroup:
    labels = np.asarray(split_data(task, subset, split)[task.label_column_name])
    predictions = np.asarray(experiments)
    if labels.ndim != 1 or predictions.ndim != 2:
        raise UnsupportedMetric("multi-label classification has no per-item form here")
    ids = tuple(map(str, range(len(labels))))
    if metric == "accuracy":  # per item: the share of experiments that got it right
        return UnitGroup(split, subset, "mean", ids, None, (predictions == labels).mean(axis=0), unit="test item")
    if metric == "f1":
        return UnitGroup(
            split, subset, "macro_f1", ids, labels.astype(np.float64), predictions.astype(np.float64), unit="test item"
        )
    raise UnsupportedMetric(f"classification metric {metric!r} has no per-item form here")


def _clustering(metric: str, split: str, subset: str, entry: dict) -> UnitGroup:
    if metric != "v_measure" or "v_measures" not in entry:
        raise UnsupportedMetric(f"clustering metric {metric!r} has no per-resample form here")
    by_level = entry["v_measures"] if isinstance(entry["v_measures"], dict) else {"0": entry["v_measures"]}
    ids = tuple(f"{level}/{i}" for level, values in by_level.items() for i in range(len(values)))
    values = np.asarray([v for values in by_level.values() for v in values], dtype=np.float64)
    return UnitGroup(split, subset, "mean", ids, None, values, unit="resample")


def _summarization(metric: str, split: str, subset: str, predictions: dict) -> UnitGroup:
    from scipy.stats import pearsonr, spearmanr

    source = {
        "cosine_spearman": ("cosine_scores", spearmanr),
        "cosine_pearson": ("cosine_scores", pearsonr),
        "dot_spearman": ("dot_scores", spearmanr),
        "spearman": ("similarity_scores", spearmanr),
        "pearson": ("similarity_scores", pearsonr),
    }.get(metric)
    if source is None:
        raise UnsupportedMetric(f"summarization metric {metric!r} has no per-text form here")
    key, correlation = source
    human = predictions["human_scores"]
    values = [float(correlation(h, p).statistic) for h, p in zip(human, predictions[key], strict=True)]
    # a text is identified by its position and its human scores (mteb drops texts with constant scores)
    ids = tuple(f"{i}:{hashlib.sha256(json.dumps(h).encode()).hexdigest()[:12]}" for i, h in enumerate(human))
    return UnitGroup(split, subset, "mean", ids, None, np.asarray(values, dtype=np.float64), unit="text")
