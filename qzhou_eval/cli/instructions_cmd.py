"""``qzhou-eval instructions``: show the exact prefixes a run with the same options will feed the model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from qzhou_eval.cli.options import parse_bool
from qzhou_eval.instructions.registry import route_prefix

if TYPE_CHECKING:
    from qzhou_eval.resolution.spec import RunSpec


def add_parser(sub) -> None:
    p = sub.add_parser("instructions", help="print the query/document prefix of every task of a benchmark")
    p.add_argument("--benchmark", required=True, help='mteb benchmark name, e.g. "MTEB(eng, v2)"')
    p.add_argument(
        "--preset", default=None, help="qzhou-embedding | qzhou-embedding-zh | none: use its instruction variant"
    )
    p.add_argument(
        "--model_name_or_path",
        default=None,
        help="a checkpoint: its recognised preset decides the variant, as in a run (no weights are loaded)",
    )
    p.add_argument(
        "--instructions",
        default=None,
        help="variant name (reference | leaderboard-2025-08) or your own file (JSON or YAML)",
    )
    p.add_argument("--use_instruction", type=parse_bool, default=True, help="true|false (default true)")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.set_defaults(handler=run)


def prefixes(spec: RunSpec) -> dict[str, dict[str, str]]:
    """{task: {"query_prefix", "document_prefix"}} for every task of the resolved run (coverage checked there)."""
    return {
        task: {
            "query_prefix": route_prefix(spec.instructions, task, "query", spec.use_instruction),
            "document_prefix": route_prefix(spec.instructions, task, "document", spec.use_instruction),
        }
        for task in spec.tasks
    }


def run(args) -> int:
    from qzhou_eval.benchmarks import benchmark_task_names
    from qzhou_eval.resolution.resolve import Request, resolve
    from qzhou_eval.runs.offline import hub_offline

    hub_offline()  # the checkpoint's JSON files, or a published model's hub-cache copy: never the network

    # The run's own resolution (the checkpoint's JSON files only: no weights are loaded or hashed).
    spec = resolve(
        Request(
            args.model_name_or_path,
            preset=args.preset if args.model_name_or_path or args.preset else "none",
            use_instruction=args.use_instruction,
            instructions=args.instructions,
            benchmark=args.benchmark,
            tasks=tuple(benchmark_task_names(args.benchmark)),
            weights_required=False,
            ranks=1,
        )
    )
    table = prefixes(spec)
    if args.format == "json":
        print(json.dumps(table, ensure_ascii=False, indent=2))
    else:
        origin = spec.instructions.origin if spec.instructions else "no instructions"
        print(f"# {args.benchmark}: {origin}")
        for task, sides in table.items():
            print(f"{task}\n  query:    {sides['query_prefix']!r}\n  document: {sides['document_prefix']!r}")
    return 0
