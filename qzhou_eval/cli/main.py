"""``qzhou-eval`` entry point: subcommands build arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import sys

from qzhou_eval.cli import encode_cmd, instructions_cmd
from qzhou_eval.errors import QZhouEvalError

_COMMANDS = (instructions_cmd, encode_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qzhou-eval", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qzhou_eval").setLevel(min(level, logging.INFO))
    try:
        return int(args.handler(args) or 0)
    except (QZhouEvalError, TypeError, FileNotFoundError) as exc:
        print(f"qzhou-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
