"""Token lengths measured with the model's own tokenizer on local text: a task's own copy where there is one,
else the local text of its language, stretched to the task's mean length from mteb's statistics.

A sample keeps every text's character and token count (no special tokens, no truncation), so truncation,
padding and attention cost follow from the distribution, not from one mean.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qzhou_eval.integrity.dataset_readme import readme_configs
from qzhou_eval.planning.counts import DOCUMENT, QUERY, TEXT

SAMPLE_TEXTS = 1500  # per side: a few seconds of tokenising, sampling error well under 1 %
_TEXT_COLUMNS = (
    "sentence1",
    "sentence2",
    "sent1",
    "sent2",
    "text",
    "sentences",
    "human_summaries",
    "machine_summaries",
)
# Used only when no local text of a language exists (flagged "assumed" wherever it is used): typical
# characters per token of a ~150k-vocabulary byte-level BPE (Qwen2/3) on English and Chinese prose.
ASSUMED_CHARS_PER_TOKEN = {"eng": 4.2, "cmn": 1.45}
_DEFAULT_ASSUMED = 3.0


@dataclass(frozen=True)
class LengthSample:
    """Character and token counts of sampled texts (tokens: no special tokens, before truncation)."""

    source: str  # e.g. "SciFact document (local copy)", "eng local text (Banking77Classification)", "assumed"
    chars: np.ndarray
    tokens: np.ndarray

    @property
    def chars_per_token(self) -> float:
        return float(self.chars.sum() / max(1, self.tokens.sum()))

    def stretched_to(self, mean_chars: float, source: str) -> LengthSample:
        """The same shape of distribution, scaled so its mean character length is ``mean_chars``."""
        factor = mean_chars / max(1e-9, float(self.chars.mean()))
        return LengthSample(source, self.chars * factor, np.maximum(1, np.round(self.tokens * factor)))


def assumed_sample(language: str, mean_chars: float) -> LengthSample:
    ratio = ASSUMED_CHARS_PER_TOKEN.get(language, _DEFAULT_ASSUMED)
    tokens = max(1.0, round(mean_chars / ratio))
    return LengthSample(f"assumed {ratio} chars/token ({language})", np.array([mean_chars]), np.array([tokens]))


def measure(tokenizer, texts: list[str], source: str, language: str) -> LengthSample:
    """Token counts by ``tokenizer``; without one (the model's files are elsewhere) the characters of the texts
    over the assumed ratio of their ``language``, so the shape of the distribution is still the local text's."""
    chars = np.array([len(t) for t in texts], float)
    if tokenizer is None:
        ratio = ASSUMED_CHARS_PER_TOKEN.get(language, _DEFAULT_ASSUMED)
        return LengthSample(f"assumed {ratio} chars/token on {source}", chars, np.maximum(1, np.ceil(chars / ratio)))
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    return LengthSample(source, chars, np.array([len(i) for i in ids], float))


def local_side_texts(folder: Path, seed: str, splits: set[str] | None = None) -> dict[str, list[str]]:
    """Up to ``SAMPLE_TEXTS`` texts per side from a task folder (mteb-data layout) and its ``splits`` (None: all):
    retrieval ``queries`` and ``corpus`` configs are the query and document sides; any other config's text
    columns the plain side."""
    by_side: dict[str, list[str]] = {}
    for side, files in _side_file_lists(folder, splits):
        for path in files:
            by_side.setdefault(side, []).extend(_texts_of(path, side))
    rng = random.Random(seed)
    return {side: rng.sample(texts, min(SAMPLE_TEXTS, len(texts))) for side, texts in by_side.items() if texts}


def shared_text_share(folder: Path, splits: set[str] | None) -> float:
    """Distinct plain-side texts over the sum of each column's distinct texts (1.0: the columns share nothing).

    An STS or pair task's two columns often repeat each other's sentences; the encoder embeds those once.
    """
    columns: dict[str, set[str]] = {}
    for side, files in _side_file_lists(folder, splits):
        if side != TEXT:
            continue
        for path in files:
            for row in _rows(path):
                for column in _TEXT_COLUMNS:
                    if isinstance(row.get(column), str):
                        columns.setdefault(column, set()).add(row[column])
    total = sum(len(v) for v in columns.values())
    return len(set().union(*columns.values())) / total if total else 1.0


def _side_file_lists(folder: Path, splits: set[str] | None) -> Iterator[tuple[str, list[Path]]]:
    for config, by_split in readme_configs(folder).items():
        side = DOCUMENT if config.endswith("corpus") else QUERY if config.endswith("queries") else TEXT
        if config.endswith(("qrels", "top_ranked")) or (side == TEXT and config == "default" and _is_qrels(by_split)):
            continue
        # a retrieval config with one split serves every evaluated split (as mteb reads it)
        chosen = [
            f
            for split, files in by_split.items()
            if splits is None or split in splits or len(by_split) == 1
            for f in files
        ]
        yield side, chosen


def _is_qrels(splits: dict[str, list[Path]]) -> bool:
    first = next((p for files in splits.values() for p in files), None)
    row = next(_rows(first), {}) if first else {}
    return "query-id" in row or "corpus-id" in row


def _texts_of(path: Path, side: str) -> Iterator[str]:
    for row in _rows(path):
        if side == DOCUMENT:  # mteb's corpus text: title and text joined by a space when there is a title
            title, text = row.get("title") or "", row.get("text") or ""
            yield f"{title} {text}".strip() if title else text
            continue
        for column in _TEXT_COLUMNS:
            value = row.get(column)
            if isinstance(value, str) and value:
                yield value
            elif isinstance(value, list):
                yield from (v for v in value if isinstance(v, str) and v)


def _rows(path: Path) -> Iterator[dict]:
    """JSON lines (plain or gzip) and parquet; other formats give no sample (the language's text stands in)."""
    name = path.name
    if name.endswith((".jsonl.gz", ".jsonl", ".json.gz", ".json")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    yield json.loads(line)
    elif name.endswith(".parquet"):
        import pandas as pd

        yield from pd.read_parquet(path).to_dict("records")
