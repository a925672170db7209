"""From a call's texts to padded batches: order, tokenise in chunks, cut by a token budget, collate.

Two plans (see :class:`qzhou_eval.options.Batching`):

- token budget (the default): texts in descending character length are tokenised a chunk at a
  time; each chunk's texts (plus the previous chunk's leftovers) are sorted by token length and cut
  into batches of at most ``max_tokens`` padded tokens and ``max_rows`` texts, so short texts come
  in large batches and the first batch is ready after one chunk, not after the whole call;
- fixed rows (``max_tokens == 0``): ``np.argsort`` of negative character lengths (as
  sentence-transformers sorts) in fixed batches of ``max_rows`` texts. (The reference policy, which
  also keeps every row of a call, is :mod:`qzhou_eval.encoder.reference_batches`.)

:func:`prefetched` runs a plan in a background thread, so tokenisation and collation of the next
batches overlap with the model's work on the current one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qzhou_eval.options import Batching, round_up

logger = logging.getLogger(__name__)

# Texts tokenised per step of a token-budget plan: large enough for well-filled batches, small
# enough that the device starts after a fraction of a second.
CHUNK_TEXTS = 4096


@dataclass
class TokenizedTexts:
    """Token ids of every text (already truncated), and how many needed truncation."""

    input_ids: list[list[int]]
    extra: dict[str, list[list[int]]]
    truncated: int


@dataclass
class Batch:
    """One forward pass: which of the call's texts it holds (``rows``) and their padded tensors."""

    rows: list[int]
    features: dict[str, torch.Tensor]
    tokens: int  # real (unpadded) tokens


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> TokenizedTexts:
    """Tokenise without padding; texts over ``max_length`` tokens are re-tokenised with truncation.

    Only the long texts go through the tokenizer twice, so the truncation count is exact and cheap.
    """
    if not texts:  # a data-parallel rank's share can be empty; fast tokenizers fail on an empty list
        return TokenizedTexts([], {}, 0)
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    keys = [k for k in full.keys() if k not in ("input_ids", "attention_mask")]
    input_ids = list(full["input_ids"])
    extra = {k: list(full[k]) for k in keys}
    long_rows = [i for i, ids in enumerate(input_ids) if len(ids) > max_length]
    if long_rows:
        cut = tokenizer([texts[i] for i in long_rows], add_special_tokens=True, truncation=True, max_length=max_length)
        for j, i in enumerate(long_rows):
            input_ids[i] = cut["input_ids"][j]
            for k in keys:
                extra[k][i] = cut[k][j]
    return TokenizedTexts(input_ids, extra, len(long_rows))


def token_lengths(tokenizer, texts: Sequence[str], max_length: int) -> list[int]:
    """Each text's token count after truncation (what a batch of it costs)."""
    if not texts:
        return []
    return [
        min(len(ids), max_length)
        for ids in tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    ]


def character_length_order(texts: Sequence[str]) -> list[int]:
    """The reference encoder's order: ``np.argsort`` of negative character lengths (longest first)."""
    return np.argsort([-len(t) for t in texts]).tolist()


# The smallest share of real tokens a budget batch keeps: a shorter text that would pull the batch below it
# starts the next batch. Sorted lengths make this cheap, and it bounds the padding computed at 3 %.
MIN_FILL = 0.97


def cut_by_budget(
    lengths: Sequence[int], max_rows: int, max_tokens: int, min_fill: float = MIN_FILL, multiple: int = 1
) -> list[list[int]]:
    """Positions of ``lengths`` (sorted longest first) in batches of <= max_tokens padded tokens, <= max_rows texts,
    each at least ``min_fill`` real tokens (a batch's padded size is its first, longest, text's length, rounded up to
    ``multiple``, times its rows).
    """
    batches, start = [], 0
    while start < len(lengths):
        longest = round_up(max(1, lengths[start]), multiple)
        cap = min(max_rows, max(1, max_tokens // longest))
        end, real = start + 1, lengths[start]
        while (
            end < len(lengths) and end - start < cap and real + lengths[end] >= min_fill * longest * (end - start + 1)
        ):
            real += lengths[end]
            end += 1
        batches.append(list(range(start, end)))
        start = end
    return batches


def cut_fixed_rows(count: int, max_rows: int) -> list[list[int]]:
    """Positions ``0..count-1`` (already in the batching order) in consecutive batches of ``max_rows``."""
    return [list(range(start, min(start + max_rows, count))) for start in range(0, count, max_rows)]


class BatchPlan:
    """Iterates the batches of one call; ``truncated`` counts the texts cut to ``max_length`` so far."""

    def __init__(self, tokenizer, texts: Sequence[str], max_length: int, batching: Batching) -> None:
        self.tokenizer = tokenizer
        self.texts = texts
        self.max_length = max_length
        self.batching = batching
        self.truncated = 0

    def __iter__(self) -> Iterator[Batch]:
        order = character_length_order(self.texts)
        return self._fixed(order) if self.batching.fixed_rows else self._budgeted(order)

    def _tokenize(self, rows: Sequence[int]) -> TokenizedTexts:
        tokens = tokenize(self.tokenizer, [self.texts[i] for i in rows], self.max_length)
        self.truncated += tokens.truncated
        return tokens

    def _fixed(self, order: list[int]) -> Iterator[Batch]:
        for positions in cut_fixed_rows(len(order), self.batching.max_rows):
            rows = [order[p] for p in positions]
            tokens = self._tokenize(rows)
            yield self._collate(rows, tokens, range(len(rows)))

    def _budgeted(self, order: list[int]) -> Iterator[Batch]:
        pool_rows: list[int] = []
        pool = TokenizedTexts([], {}, 0)
        for start in range(0, len(order), CHUNK_TEXTS):
            rows = order[start : start + CHUNK_TEXTS]
            tokens = self._tokenize(rows)
            pool_rows, pool = pool_rows + rows, _concat(pool, tokens)
            last_chunk = start + CHUNK_TEXTS >= len(order)
            by_length = sorted(range(len(pool_rows)), key=lambda i: -len(pool.input_ids[i]))
            lengths = [len(pool.input_ids[i]) for i in by_length]
            batches = cut_by_budget(
                lengths,
                self.batching.max_rows,
                self.batching.max_tokens,
                multiple=self.batching.pad_to_multiple_of or 1,
            )
            keep = batches if last_chunk else batches[:-1]  # the last, maybe part-filled, batch waits for more
            for positions in keep:
                picked = [by_length[p] for p in positions]
                yield self._collate([pool_rows[i] for i in picked], pool, picked)
            if not last_chunk:
                left = [by_length[p] for p in batches[-1]]
                pool_rows = [pool_rows[i] for i in left]
                pool = _select(pool, left)

    def _collate(self, rows: list[int], tokens: TokenizedTexts, picked: Iterable[int]) -> Batch:
        picked = list(picked)
        features = collate(self.tokenizer, tokens, picked, self.batching.pad_to_multiple_of)
        return Batch(rows, features, sum(len(tokens.input_ids[i]) for i in picked))


def _concat(a: TokenizedTexts, b: TokenizedTexts) -> TokenizedTexts:
    return TokenizedTexts(a.input_ids + b.input_ids, {k: a.extra.get(k, []) + v for k, v in b.extra.items()}, 0)


def _select(tokens: TokenizedTexts, picked: Sequence[int]) -> TokenizedTexts:
    return TokenizedTexts(
        [tokens.input_ids[i] for i in picked], {k: [v[i] for i in picked] for k, v in tokens.extra.items()}, 0
    )


def collate(
    tokenizer, tokens: TokenizedTexts, rows: Sequence[int], pad_to_multiple_of: int | None = None
) -> dict[str, torch.Tensor]:
    """Left-pad the chosen rows into tensors (the tokenizer's padding side is left), to a multiple of
    ``pad_to_multiple_of`` tokens when given."""
    features = [{"input_ids": tokens.input_ids[i], **{k: v[i] for k, v in tokens.extra.items()}} for i in rows]
    return dict(tokenizer.pad(features, padding=True, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"))


_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterable, depth: int = 2) -> Iterator:
    """Yield ``items`` while a background thread computes up to ``depth`` of the next ones.

    An exception in the background is raised here, in the consumer; a consumer that stops early
    (an exception, a ``break``) stops the background thread too.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(_Raised(exc))
            return
        offer(_END)

    worker = threading.Thread(target=produce, name="qzhou-eval-batches", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()
