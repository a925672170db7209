"""A whole synthesis run over SciFact train, offline, through the loopback chat endpoint; then the trainer reads it.

    python3 reproducibility/synth/loopback_run.py [--data ../shared/mteb-data/SciFact] [--out runs/synth/loopback]

No LLM is reachable here, so the endpoint answers by rule from the real data, with faults mixed in:
- paraphrase: the claim with domain synonyms swapped in (a claim no rule touches comes back unchanged, a copy);
- augmentation: another train claim with its evidence (another topic of the same domain);
- hard negative: the TF-IDF-closest non-relevant SciFact abstract, cut to the positive's length;
- about 3 % each malformed JSON, wrong field (schema), another language, and for paraphrases an overlong
  answer; about 4 % of requests get a 429, 2 % a 500 and 1 % a stall past the client's timeout first.
Every answer goes through the real pipeline's checks (MiniLM as the scorer); the script prints the report
(kept and rejected by reason, retries), then trains two steps on ``rows.jsonl`` to show the trainer reads it.
A second run over the same ``--out`` asks nothing again (the request record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from qzhou_eval.testing.loopback_chat import ChatRequest, Fail, LoopbackChat, Reply, Stall  # noqa: E402
from qzhou_eval.train.data.retrieval_folder import read_retrieval_folder  # noqa: E402

SYNONYMS = {
    "increases": "raises",
    "decreases": "lowers",
    "reduces": "lowers",
    "associated with": "linked to",
    "patients": "individuals",
    "higher": "greater",
    "lower": "reduced",
    "risk": "likelihood",
    "causes": "leads to",
    "inhibits": "suppresses",
    "promotes": "fosters",
    "required": "needed",
    "mice": "murine models",
    "expression": "levels",
    "results in": "produces",
    "induces": "triggers",
    "prevents": "averts",
    "enhances": "boosts",
    "impairs": "hampers",
    "correlated with": "related to",
    "significantly": "markedly",
    "treatment": "therapy",
    "increased": "elevated",
    "decreased": "diminished",
    "reduced": "lowered",
    "individuals": "people",
    "activity": "function",
    "effective": "efficacious",
    "development": "formation",
    "important": "key",
    "regulates": "controls",
    "involved in": "part of",
}
_SYNONYM = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(SYNONYMS, key=len, reverse=True)) + r")\b")
FOREIGN = ["这项研究表明该药物可以显著降低患者的风险。", "该蛋白的表达水平与疾病进展密切相关。"]
TIMEOUT_S = 2.0


def _bucket(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16) % 100


def _paraphrase(text: str) -> str:
    return _SYNONYM.sub(lambda m: SYNONYMS[m.group(1)], text)  # one pass: no substitution chains


class RuleBasedChat:
    """Answers built from the real dataset (see the module docstring), faults by a hash of the request."""

    def __init__(self, rows: list[dict], negatives: dict[str, str]) -> None:
        self.rows, self.negatives = rows, negatives
        self.index = {r["query"]: i for i, r in enumerate(rows)}

    def __call__(self, request: ChatRequest) -> Reply:
        source = request.source
        key = json.dumps(source, sort_keys=True)
        trouble = _bucket("transport", request.op, key)
        if request.attempt == 1 and trouble < 7:
            return Fail(429) if trouble < 4 else Fail(500) if trouble < 6 else Stall(TIMEOUT_S + 0.5)
        fault = _bucket("answer", request.op, key)
        if fault < 3:
            return 'Sure, here it is: {"text": "' + source.get("text", source.get("query", ""))[:40]
        if fault < 6:
            return json.dumps({"answer": "see above"})
        if fault < 9:
            field = {"paraphrase": "text", "augmentation": "query", "hard_negative": "negative"}[request.op]
            payload = {field: FOREIGN[fault % 2]}
            if request.op == "augmentation":
                payload["positive"] = FOREIGN[(fault + 1) % 2]
            return json.dumps(payload, ensure_ascii=False)
        if request.op == "paraphrase":
            text = source["text"]
            if fault < 12:
                return json.dumps({"text": text + " This has been reported by several independent clinical studies."})
            return json.dumps({"text": _paraphrase(text)})
        row = self.index[source["query"]]
        if request.op == "augmentation":
            other = self.rows[(row + len(self.rows) // 2) % len(self.rows)]
            return json.dumps({"query": other["query"], "positive": other["positive"]})
        positive = source["positive"]
        negative = self.negatives[source["query"]]
        return json.dumps(
            {"negative": negative[: len(positive)].rsplit(" ", 1)[0] if len(negative) > len(positive) else negative}
        )


def _source_rows(data_dir: Path) -> tuple[list[dict], dict[str, str]]:
    """One row per train claim (its first relevant abstract), and its TF-IDF-closest non-relevant abstract."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = read_retrieval_folder(data_dir, "train")
    rows = [
        {"query": data.queries[q], "positive": data.corpus[docs[0]][:1500]}
        for q, docs in data.relevant.items()
        if q in data.queries and docs
    ]
    doc_ids = list(data.corpus)
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    doc_matrix = vectorizer.fit_transform(data.corpus[d] for d in doc_ids)
    scores = (vectorizer.transform(data.queries[q] for q in data.relevant) @ doc_matrix.T).toarray()
    negatives = {}
    for q, row_scores in zip(data.relevant, scores):
        relevant = set(data.relevant[q])
        best = next(doc_ids[j] for j in row_scores.argsort()[::-1] if doc_ids[j] not in relevant)
        negatives[data.queries[q]] = data.corpus[best]
    return rows, negatives


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "mteb-data" / "SciFact"))
    parser.add_argument("--out", default=str(REPO / "runs" / "synth" / "loopback"))
    parser.add_argument("--rows", type=int, default=0, help="use the first N claims (0: all)")
    parser.add_argument("--train_steps", type=int, default=2)
    args = parser.parse_args()

    from qzhou_eval.train.config import BUNDLED_MINILM, TrainConfig
    from qzhou_eval.train.synth.config import SynthConfig
    from qzhou_eval.train.synth.pipeline import run_synthesis
    from qzhou_eval.train.trainer import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, negatives = _source_rows(Path(args.data))
    rows = rows[: args.rows] if args.rows else rows
    source = out / "source.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.environ.setdefault("QZHOU_LOOPBACK_KEY", "loopback")
    with LoopbackChat(RuleBasedChat(rows, negatives)) as chat:
        config = SynthConfig(
            input=str(source),
            kind="retrieval",
            output_dir=str(out / "synth"),
            operations=["paraphrase", "augmentation", "hard_negative"],
            base_url=chat.url,
            model="loopback-rules",
            api_key_env="QZHOU_LOOPBACK_KEY",
            concurrency=8,
            timeout_s=TIMEOUT_S,
            backoff_s=0.05,
            max_retries=4,
        )
        started = time.perf_counter()
        report = run_synthesis(config)  # the scorer: the bundled MiniLM (SynthConfig.scorer_model)
        seconds = time.perf_counter() - started
    print(
        f"source rows {report.source_rows}; requests planned {report.requests_planned}; answered now "
        f"{report.answered_now}, before {report.answered_before}; failed {report.failed}; {seconds:.1f} s"
    )
    print(f"HTTP requests {report.http_requests}; retries {report.retries}; tokens {report.tokens}")
    for op in config.operations:
        print(
            f"  {op:14s} kept {report.kept.get(op, 0):4d}  rejected {dict(sorted(report.rejected.get(op, {}).items()))}"
        )
    print(f"outputs: {config.output_dir}/rows.jsonl, rejected.jsonl, report.json")

    trained = train(
        TrainConfig(
            model=BUNDLED_MINILM,
            output_dir=str(out / "train"),
            max_steps=args.train_steps,
            batch_size=16,
            hard_negatives=0,
            learning_rate=2e-5,
            warmup_steps=0,
            query_max_length=64,
            passage_max_length=128,
            temperature=0.05,
            logging_steps=1,
            save_steps=100000,
            datasets=[{"name": "synth", "path": str(Path(config.output_dir) / "rows.jsonl"), "kind": "retrieval"}],
        )
    )
    log = [json.loads(line) for line in (trained / "training_log.jsonl").read_text().splitlines()]
    losses = [round(entry["loss"], 4) for entry in log if "loss" in entry]
    print(f"trainer read rows.jsonl: {args.train_steps} steps, losses {losses}, checkpoint {trained}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
