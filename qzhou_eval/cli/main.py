"""``qzhou-eval`` entry point: subcommands build arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from qzhou_eval.cli import encode_cmd, instructions_cmd, mirror_cmd, report_cmd, run_cmd, train_cmd
from qzhou_eval.errors import QZhouEvalError

_COMMANDS = (run_cmd, report_cmd, train_cmd, instructions_cmd, mirror_cmd, encode_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qzhou-eval", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=1, help="-vv for debug logging; -q style: -v 0")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def configure_logging(verbose: int) -> None:
    """Handlers live here only; the library just logs. INFO (default) shows progress bars."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qzhou_eval").setLevel(level)


def run_handled(action: Callable[[], int], verbose: int) -> int:
    """Run a command; expected errors become one clear line on stderr and exit code 2."""
    configure_logging(verbose)
    try:
        return int(action() or 0)
    except (QZhouEvalError, TypeError, FileNotFoundError, argparse.ArgumentTypeError) as exc:
        print(f"qzhou-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qzhou-eval: interrupted; finished tasks are saved, rerun to resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_handled(lambda: args.handler(args), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
