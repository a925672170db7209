"""``qzhou-eval`` entry point: subcommands build arguments and call the library."""

from __future__ import annotations

import argparse
import sys

from qzhou_eval.cli import (
    clean_cmd,
    encode_cmd,
    instructions_cmd,
    mine_cmd,
    mirror_cmd,
    plan_cmd,
    report_cmd,
    run_cmd,
    synth_cmd,
    train_cmd,
)
from qzhou_eval.cli.handling import CliParser, add_kebab_aliases, add_verbosity, run_handled, verbosity_counts

DESCRIPTION = (
    "Reproduce the QZhou-Embedding MTEB / C-MTEB leaderboard numbers exactly with mteb 2.x, and check any "
    "checkpoint or served model against them."
)
EPILOG = (
    "first steps: qzhou-eval run --tasks STSBenchmark --output_dir runs/first  (the bundled all-MiniLM-L6-v2); "
    "then qzhou-eval report runs/first --benchmark 'MTEB(eng, v2)'. Each command has --help."
)

_COMMANDS = (
    run_cmd,
    report_cmd,
    train_cmd,
    mine_cmd,
    clean_cmd,
    synth_cmd,
    instructions_cmd,
    mirror_cmd,
    encode_cmd,
    plan_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="qzhou-eval", description=DESCRIPTION, epilog=EPILOG)
    add_verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CliParser)
    for module in _COMMANDS:
        module.add_parser(sub)
    for subparser in sub.choices.values():
        add_verbosity(subparser, top=False)
    add_kebab_aliases(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # a bare `qzhou-eval` is a request for help, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    code = getattr(args, "internal_error_code", 1)
    return run_handled(lambda: args.handler(args), *verbosity_counts(args), internal_error_code=code)


if __name__ == "__main__":
    sys.exit(main())
