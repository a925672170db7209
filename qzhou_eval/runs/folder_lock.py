"""One output folder, one request: runs that would mix results are refused, shards of one request share.

Each live run registers itself in ``<output_dir>/.qzhou/runs/<host>-<pid>.json`` and holds an
exclusive ``flock`` on that file for its whole life; a registration whose lock can be taken belongs
to a dead run and is removed. Admission and every manifest read-modify-write happen under the
folder's ``.qzhou/lock``, so concurrent shards never drop each other's manifest entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from qzhou_eval.errors import OutputDirBusy
from qzhou_eval.integrity.outputs import check_file_target, check_folder_target
from qzhou_eval.record.inputs import RunInputs
from qzhou_eval.record.provenance import STATE_DIRNAME, RecordStore


def check_state_paths(output_dir: Path, suite: str, results_dir: Path, store: RecordStore, tasks: list[str]) -> None:
    """Every path a run of ``tasks`` will write can hold a file: checked before the model loads, not after hours.

    Raises:
        InvalidOptionError: naming the path and what stands in its place.
    """
    from qzhou_eval.runs.manifest import manifest_path

    for folder in (output_dir / STATE_DIRNAME, store.folder, store.evidence_folder, results_dir, output_dir / "errors"):
        check_folder_target(folder, "state folder")
    check_file_target(output_dir / STATE_DIRNAME / "lock", "lock file")
    check_file_target(manifest_path(output_dir, suite), "manifest")
    check_file_target(results_dir / "model_meta.json", "result file")
    for name in tasks:
        check_file_target(results_dir / f"{name}.json", "result file")
        check_file_target(store.path(name), "record file")
        for evidence_file in (store.evidence_files(name).predictions, store.evidence_files(name).units):
            check_file_target(evidence_file, "evidence file")
        check_file_target(output_dir / "errors" / f"{name}.txt", "error file")


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class OutputFolderLock:
    """Context manager: admit this run to ``output_dir`` (or refuse it), and serialise manifest updates."""

    def __init__(self, output_dir: Path, inputs: RunInputs, what: str) -> None:
        self.state = Path(output_dir) / STATE_DIRNAME
        self.inputs = inputs
        self.what = what
        self._registration: Path | None = None
        self._fd: int | None = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The folder-wide lock, for admission and manifest read-modify-write."""
        self.state.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def __enter__(self) -> OutputFolderLock:
        runs = self.state / "runs"
        with self.exclusive():
            runs.mkdir(exist_ok=True)
            for other in sorted(runs.glob("*.json")):
                self._check_other(other)
            self._registration = runs / f"{socket.gethostname()}-{os.getpid()}.json"
            self._fd = os.open(self._registration, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "what": self.what,
                "command": " ".join(sys.argv),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "inputs": self.inputs.as_record(),
            }
            os.write(self._fd, json.dumps(record, indent=2).encode())
        return self

    def _check_other(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            if _try_lock(fd, fcntl.LOCK_SH):  # nobody holds it: a dead run's leftover
                path.unlink(missing_ok=True)
                return
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
                theirs = RunInputs.from_record(info["inputs"])
            except (OSError, ValueError, KeyError, TypeError):
                return  # being written right now by a run that is still starting; it will check us
            diffs = theirs.differences(self.inputs)
            if diffs:
                raise OutputDirBusy(
                    f"{self.state.parent} is in use by another run with other inputs (pid {info.get('pid')} on "
                    f"{info.get('host')}, started {info.get('started')}: {info.get('command') or info.get('what')}); "
                    f"differences: {'; '.join(diffs[:6])}. Wait for it to finish or choose another --output_dir"
                )
        finally:
            os.close(fd)

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._registration.unlink()
            os.close(self._fd)
            self._fd = None
