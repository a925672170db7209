"""``vllm serve`` of a local checkpoint on 127.0.0.1: for rehearsing an endpoint run, the tests and the bench.

The same server a team runs in production (vLLM's OpenAI-compatible entry point), started with the
flags the endpoint backend's docs give, and stopped with all its worker processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from qzhou_eval.errors import EndpointError


class LocalVllmServer:
    """``with LocalVllmServer(model, name, log) as server: ... server.url ...``; ``startup_s`` is its start-up time.

    ``memory_fraction`` is vLLM's ``--gpu-memory-utilization``: on its CPU build the share of RAM it
    reserves (its default, 0.92, fails beside any other process).
    """

    def __init__(
        self,
        model: str | Path,
        served_name: str,
        log: Path,
        *,
        dtype: str = "float32",
        memory_fraction: float = 0.1,
        timeout_s: float = 300,
    ) -> None:
        self.command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", served_name, "--runner", "pooling", "--dtype", dtype, "--host", "127.0.0.1",
            "--enforce-eager", "--gpu-memory-utilization", str(memory_fraction),
        ]  # fmt: skip
        self.log = Path(log)
        self.timeout_s = timeout_s
        self.url = ""
        self.startup_s = 0.0
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> LocalVllmServer:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        start = time.monotonic()
        with self.log.open("w") as out:
            self._process = subprocess.Popen(
                [*self.command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}/v1"
        try:
            self._wait(start)
        except BaseException:
            self.__exit__()
            raise
        self.startup_s = time.monotonic() - start
        return self

    def _wait(self, start: float) -> None:
        while True:
            if self._process.poll() is not None:
                raise EndpointError(f"vllm serve exited with {self._process.returncode}:\n{self.errors()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            except OSError:
                pass
            if time.monotonic() - start > self.timeout_s:
                raise EndpointError(f"vllm serve did not answer within {self.timeout_s:.0f} s:\n{self.errors()}")
            time.sleep(0.5)

    def errors(self) -> str:
        """The error lines of the server's log (the whole log is at ``self.log``)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join([line for line in lines if "rror" in line][:20] or lines[-20:])[-4000:]

    def __exit__(self, *exc) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
