"""The CLI's contract, shared by ``qzhou-eval`` and the runner scripts: -v/-q, logging, errors, exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from qzhou_eval._ranks import launched_by_torchrun, process_rank
from qzhou_eval.errors import QZhouEvalError
from qzhou_eval.integrity.exhaustion import exhausted, is_exhaustion


class CliParser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: a bad flag is one line ``qzhou-eval: error: ...``, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"qzhou-eval: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_kebab_aliases(parser: argparse.ArgumentParser) -> None:
    """Every ``--snake_case`` flag also answers to ``--kebab-case`` (mteb's CLI spells flags that way), in
    ``parser`` and its subcommands; the snake-case spellings of the reference scripts stay."""
    for action in list(parser._actions):
        for option in list(action.option_strings):
            alias = option.replace("_", "-")
            if option.startswith("--") and alias != option and alias not in parser._option_string_actions:
                action.option_strings.append(alias)
                parser._option_string_actions[alias] = action
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                add_kebab_aliases(subparser)


def add_verbosity(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """-v / -q, accepted before or after the subcommand (a subcommand's copy never resets the top's count)."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more log output (-v: debug)")
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="less: -q warnings and errors only (no progress bars), -qq errors only",
    )


def add_mteb_verbosity(parser: argparse.ArgumentParser) -> None:
    """mteb run's ``--verbosity 0..3`` (0 errors only, 1 warnings, 2 info: the default, 3 debug), beside -v/-q."""
    parser.add_argument(
        "--verbosity",
        type=int,
        choices=range(4),
        default=None,
        help="mteb's spelling: 0 errors only, 1 warnings, 2 info (default), 3 debug",
    )


def verbosity_counts(args: argparse.Namespace) -> tuple[int, int]:
    """(verbose, quiet) counts from -v/-q, or from mteb's ``--verbosity`` where given."""
    level = getattr(args, "verbosity", None)
    if level is None:
        return getattr(args, "verbose", 0), getattr(args, "quiet", 0)
    return max(0, level - 2), max(0, 2 - level)


def log_level(verbose: int = 0, quiet: int = 0) -> int:
    """INFO by default (progress bars on); each -v one step louder, each -q one step quieter."""
    return min(max(logging.INFO + 10 * (quiet - verbose), logging.DEBUG), logging.ERROR)


class _SaidOnce(logging.Filter):
    """Drops a Python warning whose text was already logged: mteb both logs and warns most of its notices
    (e.g. a superseded task), which would otherwise print every one of them twice."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: dict[str, None] = {}  # insertion-ordered, bounded

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.name == "py.warnings":  # "<file>:<line>: UserWarning: <text>\n  <source line>"
            return text.split("Warning: ", 1)[-1].split("\n", 1)[0].strip() not in self.logged
        self.logged[text.strip()] = None
        if len(self.logged) > 1000:
            self.logged.pop(next(iter(self.logged)))
        return True


def configure_logging(verbose: int = 0, quiet: int = 0) -> None:
    """Handlers live here only; the library just logs. INFO (default) shows progress bars. Python warnings go
    through the same handler, each notice once."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _SaidOnce) for f in handler.filters):
            handler.addFilter(_SaidOnce())
    logging.getLogger("qzhou_eval").setLevel(log_level(verbose, quiet))


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # a scheduler's SIGTERM stops a run exactly as Ctrl-C does


def _bug_report(exc: BaseException) -> Path | None:
    """Keep the traceback of an unexpected error in a log file; return its path."""
    folder = Path(tempfile.gettempdir()) / "qzhou-eval-errors"
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"qzhou-eval {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(exc)), encoding="utf-8"
        )
    except OSError:
        return None
    return path


def _rank_label() -> str:
    """' (rank N)' under torchrun, so each rank's last line says whose it is."""
    return f" (rank {process_rank()})" if launched_by_torchrun() else ""


def _missing_package(exc: ImportError) -> str | None:
    """The third-party package an ImportError asks for, or None when the import failure is qzhou-eval's own."""
    import re

    name = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) and name:
        top = name.split(".")[0]
        return None if top == "qzhou_eval" else top.replace("_", "-")
    match = re.search(r"pip install (?:-U )?['\"`]?([A-Za-z0-9_.\-]+(?:[<>=!~]=?[^\s'\"`]+)?)", str(exc))
    if match:
        return match.group(1)
    match = re.search(r"requires the ([A-Za-z0-9_\-]+) library", str(exc))
    return match.group(1) if match else None


def _report_bug(exc: BaseException, code: int) -> int:
    log = _bug_report(exc)
    where = f"the traceback is in {log}" if log else "run with -v to see the traceback"
    print(
        f"qzhou-eval{_rank_label()}: internal error (a bug in qzhou-eval, not in your input): {type(exc).__name__}: "
        f"{str(exc)[:300]}; {where}; please report it with that file",
        file=sys.stderr,
    )
    return code


def run_handled(action: Callable[[], int], verbose: int = 0, quiet: int = 0, internal_error_code: int = 1) -> int:
    """Run a command with the CLI's error contract.

    A failure the user can fix (every :class:`QZhouEvalError`, a bad flag value) is one line on stderr,
    ``qzhou-eval: error: ...`` naming the fix, exit code 2. Anything else is a bug: one line saying
    so, the traceback kept in a log file, exit code ``internal_error_code`` (1; compare uses 3, as its
    1 means "a drop"). SIGTERM is handled like Ctrl-C.
    """
    configure_logging(verbose, quiet)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(action() or 0)
    except (QZhouEvalError, argparse.ArgumentTypeError) as exc:
        print(f"qzhou-eval{_rank_label()}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        package = _missing_package(exc)
        if package is None:
            return _report_bug(exc, internal_error_code)
        print(
            f"qzhou-eval{_rank_label()}: error: the package {package!r} is needed here but not installed "
            f"({str(exc).strip().splitlines()[0][:200]}); install it with: python3 -m pip install {package}",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        if not is_exhaustion(exc):
            return _report_bug(exc, internal_error_code)
        print(f"qzhou-eval{_rank_label()}: error: {exhausted(exc.filename or '?', exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qzhou-eval: interrupted; finished tasks are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into a report
        return _report_bug(exc, internal_error_code)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
