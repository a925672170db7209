"""One synthesis run: ask for what the record lacks (bounded concurrency, within budget), then check and write.

Outputs in ``output_dir`` (rebuilt from the record on every run, written atomically): ``rows.jsonl``
(checked rows of the input's kind, which the trainer reads), ``rejected.jsonl`` (each rejected answer with
its reason) and ``report.json`` (counts by operation and reason, requests, retries, tokens, budget stop).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qzhou_eval._atomic import atomic_write_json, atomic_write_text
from qzhou_eval.errors import BudgetReached, InvalidOptionError, RequestFailed
from qzhou_eval.train.cleaning import paired_cosines
from qzhou_eval.train.data.readers import read_rows
from qzhou_eval.train.synth.checks import parse_answer, surface_reason
from qzhou_eval.train.synth.client import ChatClient
from qzhou_eval.train.synth.config import SynthConfig
from qzhou_eval.train.synth.prompts import OPERATIONS, PARAPHRASED_FIELD, PROMPT_VERSION, messages
from qzhou_eval.train.synth.record import RequestRecord

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]
_HARD_NEGATIVE_BAND = 0.5  # a generated negative imitates the positive's form: length within +-50 %


@dataclass
class SynthReport:
    source_rows: int
    requests_planned: int
    answered_before: int
    answered_now: int
    failed: int  # still failing after retries (asked again on a rerun)
    budget_reached: bool
    http_requests: int
    tokens: int
    retries: dict[str, int]
    kept: dict[str, int] = field(default_factory=dict)  # by operation
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # operation -> reason -> count

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Request:
    id: str
    op: str
    source: int


def _request_id(config: SynthConfig, op: str, row: dict) -> str:
    key = json.dumps([PROMPT_VERSION, config.model, op, config.kind, row], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _cosines(embed: Embed, a: list[str], b: list[str]) -> np.ndarray:
    return paired_cosines(embed(a), embed(b)) if a else np.zeros(0)


def _ask(
    client: ChatClient, record: RequestRecord, config: SynthConfig, rows: list[dict], todo: list[_Request]
) -> tuple[int, int, bool]:
    """Ask for every request in ``todo`` with at most ``concurrency`` in flight; (answered, failed, budget hit)."""
    from tqdm.auto import tqdm

    answered = failed = 0
    budget = False
    pending = iter(todo)
    with ThreadPoolExecutor(config.concurrency) as pool, tqdm(total=len(todo), desc="synthesis requests") as bar:
        running: dict = {}

        def submit_next() -> None:
            request = next(pending, None)
            if request is not None:
                running[pool.submit(client.chat, messages(request.op, config.kind, rows[request.source]))] = request

        for _ in range(config.concurrency):
            submit_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                request = running.pop(future)
                bar.update(1)
                try:
                    answer = future.result()
                except BudgetReached:
                    budget = True
                    continue
                except RequestFailed as exc:
                    failed += 1
                    logger.warning("request %s (%s of row %d) failed: %s", request.id, request.op, request.source, exc)
                else:
                    record.add(
                        {
                            "id": request.id,
                            "op": request.op,
                            "source": request.source,
                            "answer": answer.text,
                            "tokens": answer.tokens,
                        }
                    )
                    answered += 1
                if not budget:
                    submit_next()
    return answered, failed, budget


def _candidates(
    config: SynthConfig, rows: list[dict], requests: list[_Request], record: RequestRecord, rejected: list[dict]
) -> list[tuple[_Request, dict]]:
    """Answers that pass the surface checks, with their parsed fields; the others go to ``rejected``."""
    out = []
    for request in requests:
        entry = record.answers.get(request.id)
        if entry is None:
            continue
        row = rows[request.source]
        fields, reason = parse_answer(entry["answer"], OPERATIONS[request.op].answer_fields)
        if reason is None:
            if request.op == "paraphrase":
                reason = surface_reason(fields["text"], row[PARAPHRASED_FIELD[config.kind]], config.length_band)
            elif request.op == "augmentation":
                reason = surface_reason(fields["query"], row["query"], None) or surface_reason(
                    fields["positive"], row["positive"], None
                )
            else:
                reason = surface_reason(fields["negative"], row["positive"], _HARD_NEGATIVE_BAND)
        if reason is None:
            out.append((request, fields))
        else:
            rejected.append({"op": request.op, "source": request.source, "reason": reason, "answer": entry["answer"]})
    return out


def _semantic_reasons(
    config: SynthConfig, rows: list[dict], found: list[tuple[_Request, dict]], embed: Embed
) -> list[str | None]:
    """One reason (or None) per candidate, scored in one batch per operation."""
    reasons: list[str | None] = [None] * len(found)
    by_op: dict[str, list[int]] = {}
    for i, (request, _) in enumerate(found):
        by_op.setdefault(request.op, []).append(i)
    for op, idx in by_op.items():
        sources = [rows[found[i][0].source] for i in idx]
        answers = [found[i][1] for i in idx]
        if op == "paraphrase":
            field_name = PARAPHRASED_FIELD[config.kind]
            sims = _cosines(embed, [s[field_name] for s in sources], [a["text"] for a in answers])
            bad = [s < config.paraphrase_min_similarity for s in sims]
            reason = "paraphrase_drifted"
        elif op == "augmentation":
            sims = _cosines(embed, [s["query"] for s in sources], [a["query"] for a in answers])
            bad = [s >= config.rewording_max_similarity for s in sims]
            reason = "rewording"
        else:
            queries = [s["query"] for s in sources]
            positive = _cosines(embed, queries, [s["positive"] for s in sources])
            negative = _cosines(embed, queries, [a["negative"] for a in answers])
            bad = list(negative >= positive)
            reason = "negative_beats_positive"
        for i, is_bad in zip(idx, bad):
            reasons[i] = reason if is_bad else None
    return reasons


def _new_row(config: SynthConfig, request: _Request, row: dict, fields: dict) -> dict:
    if request.op == "paraphrase":
        new = {**row, PARAPHRASED_FIELD[config.kind]: fields["text"]}
    elif request.op == "augmentation":
        new = {
            "query": fields["query"],
            "positive": fields["positive"],
            "negatives": [],
            "instruction": row.get("instruction", ""),
            "dataset": row.get("dataset", ""),
        }
    else:
        new = {**row, "negatives": [*row.get("negatives", []), fields["negative"]]}
    return {**new, "synthesis": {"op": request.op, "source": request.source, "request": request.id}}


def run_synthesis(config: SynthConfig, embed: Embed | None = None, client: ChatClient | None = None) -> SynthReport:
    """Synthesise, check and write; see the module docstring. ``embed`` defaults to the configured scorer model.

    Raises:
        InvalidOptionError: an input over ``max_source_rows``, no API key, a non-transient endpoint error.
    """
    rows = [dataclasses.asdict(r) for r in read_rows(config.input, config.kind, instruction=config.instruction or None)]
    if len(rows) > config.max_source_rows:
        raise InvalidOptionError(
            f"{config.input} has {len(rows)} rows; SPEC 3 synthesises only from datasets under "
            f"{config.max_source_rows} (max_source_rows)"
        )
    out = Path(config.output_dir)
    requests = [_Request(_request_id(config, op, row), op, i) for i, row in enumerate(rows) for op in config.operations]
    record = RequestRecord(out / "requests.jsonl")
    before = sum(r.id in record for r in requests)
    todo = [r for r in requests if r.id not in record]
    client = client or ChatClient(
        config.base_url,
        config.api_key(),
        config.model,
        timeout_s=config.timeout_s,
        max_retries=config.max_retries,
        backoff_s=config.backoff_s,
        temperature=config.temperature,
        max_requests=config.max_requests,
        max_tokens=config.max_tokens,
    )
    try:
        answered, failed, budget = _ask(client, record, config, rows, todo) if todo else (0, 0, False)
    finally:
        record.close()
    if budget:
        logger.warning("the request/token budget was reached; rerun the same command to continue where it stopped")
    rejected: list[dict] = []
    found = _candidates(config, rows, requests, record, rejected)
    if found:
        if embed is None:
            from qzhou_eval._paths import bundled_model_path
            from qzhou_eval.api import load_encoder

            embed = load_encoder(config.scorer_model or bundled_model_path()).encode
        reasons = _semantic_reasons(config, rows, found, embed)
    else:
        reasons = []
    kept_rows, kept = [], Counter()
    for (request, fields), reason in zip(found, reasons):
        if reason is None:
            kept_rows.append(_new_row(config, request, rows[request.source], fields))
            kept[request.op] += 1
        else:
            rejected.append(
                {
                    "op": request.op,
                    "source": request.source,
                    "reason": reason,
                    "answer": record.answers[request.id]["answer"],
                }
            )
    by_reason: dict[str, Counter] = {}
    for item in rejected:
        by_reason.setdefault(item["op"], Counter())[item["reason"]] += 1
    report = SynthReport(
        source_rows=len(rows),
        requests_planned=len(requests),
        answered_before=before,
        answered_now=answered,
        failed=failed,
        budget_reached=budget,
        http_requests=client.requests,
        tokens=client.tokens,
        retries=dict(client.retries),
        kept=dict(kept),
        rejected={op: dict(c) for op, c in by_reason.items()},
    )
    atomic_write_text(out / "rows.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept_rows))
    atomic_write_text(out / "rejected.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
    atomic_write_json(out / "report.json", report.as_record())
    return report
