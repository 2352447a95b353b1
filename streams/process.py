"""A stream worker in a child process (`python -m streams.worker 0` with its own environment):
started and waited for until it says it is ready, stopped or killed. For what runs a worker of
its own: `headwater chaos` and the tests that run the real thing."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from headwater.settings import PROJECT_ROOT


class WorkerProcess:
    """`python -m streams.worker 0` with `env`, serving on `port`, logging to `log`."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout_s: float = 120) -> None:
        """Start it and wait until it says it is ready (its indexes exist, partitions read)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker", "0"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the stream worker exited; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url("/ready/"), timeout=1).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the stream worker was not ready in {timeout_s:g} s; see {self.log}")

    def stats(self) -> dict[str, Any]:
        """Its search counters and stage histograms (`/search/stats/`)."""
        stats: dict[str, Any] = httpx.get(self.url("/search/stats/"), timeout=2).json()
        return stats

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` and wait for it to end (killed if a graceful stop takes over 30 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
