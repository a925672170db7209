"""Training rows of the three kinds, their readers, and transformations from raw source shapes."""

from qzhou_eval.train.data.schema import ClassificationRow, DataKind, PairRow, RetrievalRow

__all__ = ["ClassificationRow", "DataKind", "PairRow", "RetrievalRow"]
