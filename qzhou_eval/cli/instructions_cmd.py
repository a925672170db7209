"""``qzhou-eval instructions``: show the exact prefixes a run with the same options will feed the model."""

from __future__ import annotations

import json

from qzhou_eval.cli.options import parse_bool
from qzhou_eval.instructions.registry import InstructionSet, route_prefix


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


def prefixes(benchmark: str, instructions: InstructionSet | None, use_instruction: bool) -> dict[str, dict[str, str]]:
    """{task: {"query_prefix", "document_prefix"}} for every task of ``benchmark``, coverage checked."""
    from qzhou_eval.benchmarks import benchmark_task_names

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
    from qzhou_eval.presets import select_preset
    from qzhou_eval.runs.config import RunConfig, instructions_for, resolve_checkpoint

    config = RunConfig(
        model_name_or_path=args.model_name_or_path,
        benchmark=args.benchmark,
        output_dir=".",
        preset=args.preset,
        use_instruction=args.use_instruction,
        instructions=args.instructions,
    )
    if args.model_name_or_path:
        _, _, choice = resolve_checkpoint(config)  # reads the checkpoint's JSON files only, as a run does
    else:
        choice = select_preset(args.preset or "none", None)
    instructions = instructions_for(config, choice, []) if args.use_instruction else None
    table = prefixes(args.benchmark, instructions, args.use_instruction)
    if args.format == "json":
        print(json.dumps(table, ensure_ascii=False, indent=2))
    else:
        origin = instructions.origin if instructions else "no instructions"
        print(f"# {args.benchmark}: {origin}")
        for task, sides in table.items():
            print(f"{task}\n  query:    {sides['query_prefix']!r}\n  document: {sides['document_prefix']!r}")
    return 0
