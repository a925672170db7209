"""The durable record of answered requests: a JSONL file appended and flushed per answer.

A killed run loses at most the answer being written (a torn last line is cut off on reopening), and a
rerun asks only for what the record lacks, so no request is asked twice and no row is written twice
(the outputs are rebuilt from the record each run).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class RequestRecord:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, dict] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            data = path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) != len(data):  # a line torn by a kill: drop it, its request is asked again
                with open(path, "r+b") as fh:
                    fh.truncate(len(whole))
            for line in whole.decode("utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.answers[entry["id"]] = entry
        self._fh = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def __contains__(self, request_id: str) -> bool:
        return request_id in self.answers

    def add(self, entry: dict) -> None:
        with self._lock:
            self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.answers[entry["id"]] = entry

    def close(self) -> None:
        self._fh.close()
