"""``qzhou-eval instructions``: show the exact prefixes a run will feed the model, per task."""

from __future__ import annotations

import json

from qzhou_eval.instructions.registry import (
    InstructionSet,
    benchmark_task_names,
    load_benchmark_instructions,
    route_prefix,
)
from qzhou_eval.cli.options import parse_bool


def add_parser(sub) -> None:
    p = sub.add_parser("instructions", help="print the query/document prefix of every task of a benchmark")
    p.add_argument("--benchmark", required=True, help='mteb benchmark name, e.g. "MTEB(eng, v2)"')
    p.add_argument("--instructions", default=None, help="your own instruction file (JSON or YAML)")
    p.add_argument("--use_instruction", type=parse_bool, default=True, help="true|false (default true)")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.set_defaults(handler=run)


def prefixes(benchmark: str, instructions: InstructionSet | None, use_instruction: bool) -> dict[str, dict[str, str]]:
    """{task: {"query_prefix", "document_prefix"}} for every task of ``benchmark``, coverage checked."""
    tasks = benchmark_task_names(benchmark)
    if use_instruction:
        instructions.check_coverage(tasks)
    return {
        task: {
            "query_prefix": route_prefix(instructions, task, "query", use_instruction),
            "document_prefix": route_prefix(instructions, task, "document", use_instruction),
        }
        for task in tasks
    }


def run(args) -> int:
    instructions = (
        InstructionSet.from_file(args.instructions) if args.instructions else load_benchmark_instructions(args.benchmark)
    )
    table = prefixes(args.benchmark, instructions, args.use_instruction)
    if args.format == "json":
        print(json.dumps(table, ensure_ascii=False, indent=2))
    else:
        for task, sides in table.items():
            print(f"{task}\n  query:    {sides['query_prefix']!r}\n  document: {sides['document_prefix']!r}")
    return 0
