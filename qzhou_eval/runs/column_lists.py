"""While mteb evaluates, ``dataset["column"]`` is a list again, as in the ``datasets`` 2.x/3.x that mteb is written for.

``datasets`` >= 4 returns a lazy ``Column`` instead, and mteb 2.26 indexes it one element at a time:
Banking77Classification's undersampling does about 100k single-row Arrow selects, and sklearn
converts the test labels row by row for each of seven metrics in each of ten experiments. That is
about 40 s of a two-minute CPU run of STSBenchmark + SICK-R + Banking77, spent on 3,080 labels.
mteb supports ``datasets`` >= 2.19, where a column is a list, so giving it a list is the type its
code expects; the values are the same, and so are the scores (tests compare both ways).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_WHOLE_COLUMN_FORMATS = ("arrow", "pandas", "polars")  # these already return the column in one piece


@contextlib.contextmanager
def columns_as_lists() -> Iterator[None]:
    """Within the block, a column of a ``datasets.Dataset`` comes back materialised (list, or array under numpy format)."""
    import datasets

    if not hasattr(datasets, "Column"):  # datasets < 4: columns are lists already
        yield
        return
    original = datasets.Dataset.__getitem__

    def getitem(self, key):
        if isinstance(key, str) and self._format_type not in _WHOLE_COLUMN_FORMATS:
            return self._getitem(key)
        return original(self, key)

    datasets.Dataset.__getitem__ = getitem
    try:
        yield
    finally:
        datasets.Dataset.__getitem__ = original
