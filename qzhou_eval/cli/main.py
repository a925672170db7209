"""``qzhou-eval`` entry point: subcommands build arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from qzhou_eval.cli import encode_cmd, instructions_cmd, mirror_cmd, report_cmd, run_cmd, train_cmd
from qzhou_eval.errors import QZhouEvalError

_COMMANDS = (run_cmd, report_cmd, train_cmd, instructions_cmd, mirror_cmd, encode_cmd)


def add_verbosity(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """-v / -q, accepted before or after the subcommand (a subcommand's copy never resets the top's count)."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more log output (-v: debug)")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="less: -q warnings and errors only (no progress bars), -qq errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qzhou-eval", description=__doc__)
    add_verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.add_parser(sub)
    for subparser in sub.choices.values():
        add_verbosity(subparser, top=False)
    return parser


def log_level(verbose: int = 0, quiet: int = 0) -> int:
    """INFO by default (progress bars on); each -v one step louder, each -q one step quieter."""
    return min(max(logging.INFO + 10 * (quiet - verbose), logging.DEBUG), logging.ERROR)


def configure_logging(verbose: int = 0, quiet: int = 0) -> None:
    """Handlers live here only; the library just logs. INFO (default) shows progress bars."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qzhou_eval").setLevel(log_level(verbose, quiet))


def run_handled(action: Callable[[], int], verbose: int = 0, quiet: int = 0) -> int:
    """Run a command; expected errors become one clear line on stderr and exit code 2."""
    configure_logging(verbose, quiet)
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
    return run_handled(lambda: args.handler(args), args.verbose, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
