"""A stream worker in a child process, for the tests that run the real thing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from headwater.settings import PROJECT_ROOT


class StreamWorker:
    """`python -m streams.worker 0` with `env`, serving its endpoints on `port`."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> None:
        """Start it and wait until it says it is ready (its indexes exist, partitions read)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker", "0"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited; see {self.log}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout_s:g} s; see {self.log}")

    def stats(self) -> dict[str, int]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/search/stats/", timeout=2)
        stats: dict[str, int] = response.json()
        return stats

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
