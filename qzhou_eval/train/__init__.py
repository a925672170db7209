"""Retrain embedding checkpoints with the QZhou recipe (SPEC 3): data kinds, losses, grouped sampling."""

from qzhou_eval.train.sampling import dataset_weights

__all__ = ["dataset_weights"]
