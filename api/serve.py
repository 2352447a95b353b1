"""`python -m api.serve`: the API under uvicorn as `headwater run` and `headwater bench search`
start it: its log configuration (`api.logs`: request ids, masking), uvloop and httptools, and
`HW_API_PROCESSES` worker processes, whose metrics then go through a multiprocess directory
(`api.metrics`) emptied at each start.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from api.logs import log_config
from api.settings import ApiSettings

# api.metrics.MULTIPROCESS_ENV, named here because prometheus_client reads it when imported,
# which must come after it is set.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
APP = "api.app:create_app"


def metrics_dir(data_dir: Path) -> Path:
    return data_dir / "run" / "api-metrics"


def fresh_metrics_dir(directory: Path) -> None:
    """`directory`, made if missing, without the files of an earlier run's processes (their
    counts would be added to this run's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink(missing_ok=True)


def uvicorn_options(api: ApiSettings) -> dict[str, Any]:
    return {
        "factory": True,
        "host": api.host,
        "port": api.port,
        "workers": api.processes,
        "log_config": log_config(api.log_level.upper()),
        "access_log": api.access_log,
        "loop": "uvloop",
        "http": "httptools",
        # Behind no proxy by default: client addresses are the peers'.
        "proxy_headers": False,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__)
    parser.add_argument("--host", help="HW_API_HOST")
    parser.add_argument("--port", type=int, help="HW_API_PORT")
    parser.add_argument("--processes", type=int, help="HW_API_PROCESSES")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    api = ApiSettings(**overrides)
    if api.processes > 1 and not os.environ.get(MULTIPROCESS_ENV):
        from headwater.settings import StackSettings

        os.environ[MULTIPROCESS_ENV] = str(metrics_dir(StackSettings().data_dir))
    if os.environ.get(MULTIPROCESS_ENV):
        fresh_metrics_dir(Path(os.environ[MULTIPROCESS_ENV]))

    import uvicorn

    uvicorn.run(APP, **uvicorn_options(api))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApi:
    """`python -m api.serve` as a child process on a free port (for the search benchmark and
    the tests): its output to `log`, its metrics in a directory of its own, `env` over this
    process's environment; stopped, all its processes, on exit."""

    def __init__(self, log: Path, processes: int = 1, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log, self.processes, self.env = log, processes, dict(env or {})
        self._metrics_dir = tempfile.TemporaryDirectory(prefix="hw-api-metrics-")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServedApi:
        env = {**os.environ, MULTIPROCESS_ENV: self._metrics_dir.name, **self.env}
        args = [sys.executable, "-m", "api.serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--processes", str(self.processes)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"the API did not answer in 90 s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._metrics_dir.cleanup()


if __name__ == "__main__":
    main()
