"""``qzhou-eval clean``: deduplicate training rows and drop weak query-positive pairs, with a report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import COSINE, PERCENT_OPEN_TOP, number_arg
from qzhou_eval.integrity.outputs import check_output


def add_parser(sub) -> None:
    p = sub.add_parser("clean", help="deduplicate rows (exact + normalised) and apply a query-positive score floor")
    p.add_argument("--input", required=True, help="rows (JSONL/Parquet) of --kind, as the trainer reads them")
    p.add_argument("--kind", required=True, help="retrieval | pair | classification")
    p.add_argument("--out", required=True, help="output .jsonl (a report is written beside it: <out>.report.json)")
    p.add_argument("--model", default=None, help="embedding model for the score floor (default: the bundled MiniLM)")
    floor = p.add_mutually_exclusive_group()
    floor.add_argument(
        "--min_score",
        type=number_arg(COSINE),
        default=None,
        help="drop rows whose two sides score below this cosine",
    )
    floor.add_argument(
        "--drop_percentile",
        type=number_arg(PERCENT_OPEN_TOP),
        default=None,
        help="drop the lowest-scoring P percent",
    )
    p.add_argument("--instruction", default=None, help="instruction for the first side (retrieval queries)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never the --input itself)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval._atomic import atomic_write_json, atomic_write_text
    from qzhou_eval.train.cleaning import clean
    from qzhou_eval.train.data.readers import read_rows

    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise InvalidOptionError(f"--out {out}: write rows to a .jsonl file")
    check_output(out, inputs=[args.input], overwrite=args.overwrite)
    check_output(out.with_name(out.name + ".report.json"), inputs=[args.input], overwrite=args.overwrite)
    rows = read_rows(args.input, args.kind)
    embed = embed_queries = None
    if args.min_score is not None or args.drop_percentile is not None:
        from qzhou_eval._paths import bundled_model_path
        from qzhou_eval.api import load_encoder

        encoder = load_encoder(args.model or bundled_model_path())
        embed = encoder.encode
        if args.instruction:
            embed_queries = lambda texts: encoder.encode(texts, instruction=args.instruction)  # noqa: E731
    kept, report = clean(
        rows, embed, min_score=args.min_score, drop_percentile=args.drop_percentile, embed_queries=embed_queries
    )
    atomic_write_text(out, "".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n" for r in kept))
    atomic_write_json(out.with_name(out.name + ".report.json"), {**report.as_record(), "input": str(args.input)})
    print(
        f"{report.rows_out} of {report.rows_in} rows kept -> {out}: {report.exact_duplicates} exact and "
        f"{report.normalised_duplicates} normalised duplicates, {report.below_score} below the score floor"
        + (f" ({report.score_cut})" if report.score_cut is not None else "")
    )
    return 0
