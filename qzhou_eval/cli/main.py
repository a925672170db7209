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
    report_cmd,
    run_cmd,
    synth_cmd,
    train_cmd,
)
from qzhou_eval.cli.handling import CliParser, add_verbosity, run_handled

_COMMANDS = (run_cmd, report_cmd, train_cmd, mine_cmd, clean_cmd, synth_cmd, instructions_cmd, mirror_cmd, encode_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="qzhou-eval", description=__doc__)
    add_verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CliParser)
    for module in _COMMANDS:
        module.add_parser(sub)
    for subparser in sub.choices.values():
        add_verbosity(subparser, top=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = getattr(args, "internal_error_code", 1)
    return run_handled(lambda: args.handler(args), args.verbose, args.quiet, internal_error_code=code)


if __name__ == "__main__":
    sys.exit(main())
