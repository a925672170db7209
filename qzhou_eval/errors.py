"""Exception types. Every message names the fix, not only the fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class QZhouEvalError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidOptionError(QZhouEvalError, ValueError):
    """An option value outside its valid set (pooling, preset, dim, dtype, ...)."""

    @classmethod
    def for_choice(cls, what: str, value: object, valid: Iterable[object]) -> InvalidOptionError:
        """Build the standard "'x' is not a valid Y, must be one of [...]" error."""
        valid = list(valid)
        msg = f"{value!r} is not a valid {what}, must be one of {valid}"
        by_lower = {str(v).lower(): str(v) for v in valid}
        close = [by_lower[c] for c in difflib.get_close_matches(str(value).lower(), list(by_lower), n=3)]
        if close:
            msg += f" (did you mean {', '.join(repr(c) for c in close)}?)"
        return cls(msg)


class ModelNotFoundError(QZhouEvalError, FileNotFoundError):
    """A model path that is neither a local folder nor a reachable hub id."""


class ModelFormatError(QZhouEvalError, ValueError):
    """A checkpoint folder whose files do not fit what it declares (modules.json, Dense, ...)."""


class EmbeddingError(QZhouEvalError, RuntimeError):
    """The model produced NaN or inf: never returned as a silent result."""


class InstructionError(QZhouEvalError, ValueError):
    """An instruction file that is malformed or does not cover the tasks asked for."""


class DistributedError(QZhouEvalError, RuntimeError):
    """A multi-process run that cannot go on: a rank stopped, or the ranks disagree on the work."""


class InputTextError(QZhouEvalError, TypeError):
    """An input text that is not a string (a TypeError for API callers; one clear line at the CLI)."""


class SnapshotError(QZhouEvalError, ValueError):
    """A mirrored dataset snapshot that mteb could not load offline."""


class EndpointMismatch(QZhouEvalError):
    """The served model does not compute what the local checkpoint computes (the run stops before it starts)."""


class CacheIOError(QZhouEvalError, OSError):
    """The cache file could not be used for a reason other than damage; it is left untouched."""


class UnreadableTaskError(QZhouEvalError):
    """The model maps the task's distinct texts to (almost) the same input or vector."""


class SubmissionError(QZhouEvalError):
    """A run that cannot be submitted as it is."""


class CardError(QZhouEvalError):
    """A card that cannot be read or merged."""


class ResourceExhaustedError(QZhouEvalError, OSError):
    """The disk, a file-size limit or a quota ran out; what was written before stays intact."""


class ResultFileError(QZhouEvalError, ValueError):
    """A result file or folder that is not in mteb's layout or not valid JSON."""


class EndpointError(QZhouEvalError):
    """A server answered something that cannot be an embedding of what was asked, or kept failing."""


class OutputDirBusy(QZhouEvalError):
    """Another live run with other inputs holds the output folder."""


class DataDirError(QZhouEvalError, FileNotFoundError):
    """A --data_dir that lacks tasks or holds malformed task folders."""


class OutputDirConflict(QZhouEvalError):
    """An output folder that holds results of another model or other options."""


# Signals one part of the package raises and another catches; never shown to a user as they are.
class NotPaired(ValueError):
    """The two runs' units are not the same units (other data, other subsets): no paired test."""


class UnsupportedMetric(ValueError):
    """The task's main metric has no per-unit decomposition here; its comparisons use point deltas."""


class ManifestError(ValueError):
    """A manifest whose JSON does not have the manifest's shape (callers move it aside or skip it)."""


class BudgetReached(Exception):
    """The configured request or token budget is spent; the run stops cleanly and can be resumed."""


class RequestFailed(Exception):
    """A request still failed after every retry (it is not recorded, so a rerun asks again)."""
