"""``qzhou-eval mine``: hard negatives for a retrieval folder's split, as rows the trainer reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import FRACTION, NON_NEGATIVE_INT, POSITIVE_INT, number_arg
from qzhou_eval.integrity.outputs import check_output

logger = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("mine", help="mine hard negatives (rank window + positive-aware false-negative filter)")
    p.add_argument("--model", default=None, help="embedding model that ranks the corpus (default: the bundled MiniLM)")
    p.add_argument(
        "--data_dir",
        required=True,
        help="retrieval folder: mteb layout (README.md configs) or corpus.jsonl + queries.jsonl + qrels/",
    )
    p.add_argument("--split", default="train", help="the qrels split to mine for (default: train)")
    p.add_argument("--out", required=True, help="output .jsonl (a report is written beside it: <out>.report.json)")
    p.add_argument(
        "--range_min",
        type=number_arg(NON_NEGATIVE_INT),
        default=10,
        help="skip the nearest range_min non-relevant documents",
    )
    p.add_argument(
        "--range_max",
        type=number_arg(POSITIVE_INT),
        default=30,
        help="candidates are ranks range_min+1..range_max",
    )
    p.add_argument(
        "--margin",
        type=number_arg(FRACTION),
        default=0.95,
        help="drop candidates scoring >= margin x the positive's score (0: no filter)",
    )
    p.add_argument(
        "--num_negatives",
        type=number_arg(POSITIVE_INT),
        default=4,
        help="negatives kept per (query, positive)",
    )
    p.add_argument("--instruction", default=None, help="query instruction (as the model was trained to get it)")
    p.add_argument(
        "--corpus_chunk",
        type=number_arg(POSITIVE_INT),
        default=32768,
        help="documents encoded and searched at a time",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never a file of --data_dir)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval._atomic import atomic_write_json, atomic_write_text
    from qzhou_eval._paths import bundled_model_path
    from qzhou_eval.api import load_encoder
    from qzhou_eval.train.data.retrieval_folder import read_retrieval_folder
    from qzhou_eval.train.mining import MiningConfig, mine, rows_as_records

    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise InvalidOptionError(f"--out {out}: write rows to a .jsonl file")
    inputs = [p for p in Path(args.data_dir).rglob("*") if p.is_file()] if Path(args.data_dir).is_dir() else []
    check_output(out, inputs=inputs, overwrite=args.overwrite)
    check_output(out.with_name(out.name + ".report.json"), inputs=inputs, overwrite=args.overwrite)
    config = MiningConfig(
        range_min=args.range_min,
        range_max=args.range_max,
        margin=args.margin,
        num_negatives=args.num_negatives,
        corpus_chunk=args.corpus_chunk,
    )
    config.check()
    data = read_retrieval_folder(args.data_dir, args.split)
    encoder = load_encoder(args.model or bundled_model_path(), device=args.device)
    rows, report = mine(
        data,
        lambda texts: encoder.encode(texts, instruction=args.instruction or None),
        encoder.encode,
        config,
        instruction=args.instruction or "",
    )
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows_as_records(rows)))
    record = {
        **report.as_record(),
        "model": str(args.model or "bundled all-MiniLM-L6-v2"),
        "data_dir": str(args.data_dir),
        "split": args.split,
        "instruction": args.instruction or "",
    }
    atomic_write_json(out.with_name(out.name + ".report.json"), record)
    print(f"{report.rows} rows from {report.queries} queries over {report.documents} documents -> {out}")
    print(
        f"window candidates {report.candidates}; removed as likely false negatives (>= {config.margin} x positive) "
        f"{report.removed_by_filter}; pairs with fewer than {config.num_negatives} left, not written "
        f"{report.rows_short}; {report.total_seconds:.1f} s ({report.encode_seconds:.1f} s encoding)"
    )
    return 0
