"""The three operations' prompts (SPEC 3) and what each answer must hold; one owner for both."""

from __future__ import annotations

import json
from dataclasses import dataclass

PROMPT_VERSION = 1  # part of every request id: a changed prompt is a new request

# The field a paraphrase rewrites, per data kind (labels and scores are kept).
PARAPHRASED_FIELD = {"retrieval": "query", "pair": "text_a", "classification": "text"}


@dataclass(frozen=True)
class Operation:
    name: str
    instructions: str
    answer_fields: tuple[str, ...]


OPERATIONS = {
    "paraphrase": Operation(
        "paraphrase",
        "Rewrite the text so it keeps exactly the same meaning but uses a different sentence structure and wording. "
        "Keep the same language and domain, and keep the length within 15 percent of the original. "
        'Answer with a JSON object {"text": "..."} and nothing else.',
        ("text",),
    ),
    "augmentation": Operation(
        "augmentation",
        "Write a NEW search query and a passage that answers it, in the same domain and language as the example "
        "pair, but about another topic, aspect or viewpoint; do not reword the example. "
        'Answer with a JSON object {"query": "...", "positive": "..."} and nothing else.',
        ("query", "positive"),
    ),
    "hard_negative": Operation(
        "hard_negative",
        "Write a passage that imitates the form and style of the positive passage but answers the query worse: "
        "it deviates in meaning, brings irrelevant content, or covers another aspect of the same topic. "
        'Same language. Answer with a JSON object {"negative": "..."} and nothing else.',
        ("negative",),
    ),
}


def source_view(op: str, kind: str, row: dict) -> dict:
    """What the model sees of a source row for ``op``."""
    if op == "paraphrase":
        return {"text": row[PARAPHRASED_FIELD[kind]]}
    return {"query": row["query"], "positive": row["positive"]}


def messages(op: str, kind: str, row: dict) -> list[dict]:
    return [
        {"role": "system", "content": OPERATIONS[op].instructions},
        {"role": "user", "content": json.dumps(source_view(op, kind, row), ensure_ascii=False)},
    ]
