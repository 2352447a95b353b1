"""The main job: stack, schema, connectors, workers and API, sample workload, then where to look.

Long-running parts (stream workers, the API, the background workload) run as managed background
processes with pid files and logs under the data directory; `headwater stop` ends them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from api.settings import ApiSettings
from headwater.console import console, fail, print_table
from headwater.settings import Settings


@dataclass(frozen=True)
class AppProcess:
    """One background process of the main job."""

    name: str
    args: list[str]

    def pid_file(self, settings: Settings) -> Path:
        return settings.stack.data_dir / "run" / f"app-{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.stack.data_dir / "logs" / f"{self.name}.log"


def _headwater(*args: str) -> list[str]:
    return [sys.executable, "-m", "headwater", *args]


def app_processes(api_host: str, api_port: int) -> list[AppProcess]:
    return [
        AppProcess("worker", _headwater("worker", "--workers", "1")),
        # uvicorn with the API's log configuration and HW_API_PROCESSES workers.
        AppProcess(
            "api",
            [sys.executable, "-m", "api.serve", "--host", api_host, "--port", str(api_port)],
        ),
    ]


def trickle_process(rate: float) -> AppProcess:
    # A trickle of changes keeps the dashboards and indexes moving after the first burst.
    return AppProcess(
        "workload", _headwater("generate", "--rate", str(rate), "--total", "100000000", "--json")
    )


def wait_ready(url: str, timeout_s: float) -> bool:
    """Poll the API's readiness (Kafka, Elasticsearch and the workers) until it answers 200."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(1)
    return False


def _alive(pid_file: Path) -> int | None:
    from headwater.stack.procs import is_alive, read_pid_file

    pid = read_pid_file(pid_file)
    return pid if pid and is_alive(pid) else None


def start(process: AppProcess, settings: Settings) -> int:
    """Start `process` in the background unless it already runs; return its pid."""
    pid_file, log_file = process.pid_file(settings), process.log_file(settings)
    running = _alive(pid_file)
    if running:
        return running
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        child = subprocess.Popen(
            process.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )
    pid_file.write_text(f"{child.pid}\n")
    return child.pid


def stop_all(settings: Settings) -> list[str]:
    from headwater.stack.procs import terminate_tree

    stopped = []
    for pid_file in sorted((settings.stack.data_dir / "run").glob("app-*.pid")):
        pid = _alive(pid_file)
        if pid:
            terminate_tree(pid, timeout_s=15)
            stopped.append(pid_file.stem.removeprefix("app-"))
        pid_file.unlink(missing_ok=True)
    return stopped


def _step(title: str, args: list[str]) -> None:
    console.rule(f"[bold]{title}")
    result = subprocess.run(_headwater(*args), check=False)
    if result.returncode != 0:
        fail(f"{title} failed (exit {result.returncode}); see the output above")


def run(
    ctx: typer.Context,
    burst: int = typer.Option(2000, help="Operations written right away, with a progress bar."),
    rate: float = typer.Option(200.0, help="Rate of the first burst (operations/s)."),
    trickle: float = typer.Option(5.0, help="Operations/s kept flowing in the background."),
) -> None:
    """Bring everything up, start the workers and the API, write sample changes, show where."""
    from headwater.console import settings_of

    settings = settings_of(ctx)
    _step("stack", ["stack", "up"])
    _step("schema", ["db", "migrate"])
    _step("connectors", ["connectors", "apply"])
    _step("pipelines", ["pipelines", "apply"])
    console.rule("[bold]workers and API")
    api = ApiSettings()
    pids = {p.name: start(p, settings) for p in app_processes(api.host, api.port)}
    with console.status("waiting for the workers and the API to be ready"):
        if not wait_ready(api.url, timeout_s=180):
            logs = settings.stack.data_dir / "logs"
            fail(
                f"workers or API not ready after 180s; see {logs / 'worker.log'} "
                f"and {logs / 'api.log'}"
            )
    token = _run_key(settings)
    _step("sample workload", ["generate", "--rate", str(rate), "--total", str(burst)])
    pids["workload"] = start(trickle_process(trickle), settings)
    logs = settings.stack.data_dir / "logs"
    print_table(
        "Headwater is running",
        ["what", "where"],
        [
            [
                "PostgreSQL (source: shop, warehouse: analytics)",
                f"{settings.postgres.host}:{settings.postgres.port}",
            ],
            ["Kafka", settings.kafka.bootstrap_servers],
            ["Kafka Connect (Debezium source: shop-source)", settings.connect.url],
            ["Elasticsearch", settings.elasticsearch.url],
            ["Search API (OpenAPI at /docs)", f"{api.url}/api/v1/indexes/products/search?q=kettle"],
            ["Dashboards (live page)", f"{api.url}/ui/dashboards"],
            ["Check the index against the source", "headwater verify search"],
            ["Prefix completion", f"{api.url}/api/v1/indexes/products/suggestions?prefix=ket"],
            *[[f"{name} (pid {pid})", str(logs / f"{name}.log")] for name, pid in pids.items()],
            ["service status", "headwater stack status"],
            ["stop everything", "headwater stop && headwater stack down"],
        ],
    )
    console.print(
        f"API key for this run (scopes search, dashboards; shown once): [bold]{token}[/]\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'{api.url}/api/v1/indexes/products/search?q=kettle'\n"
        f"  export HW_API_KEY={token}   # for `headwater dashboards ...`",
        soft_wrap=True,  # lines to copy whole: never cut at the terminal's width
    )


# The key `headwater run` makes; each run revokes the previous run's and prints a new one.
RUN_KEY_NAME = "headwater-run"


def _run_key(settings: Settings) -> str:
    from api.keys import direct_store

    keys = direct_store(settings.postgres)
    keys.revoke_named(RUN_KEY_NAME)
    _, token = keys.create(RUN_KEY_NAME, ["search", "dashboards"])
    return token


def stop(ctx: typer.Context) -> None:
    """Stop the workers, the API and the background workload started by `headwater run`."""
    from headwater.console import settings_of

    stopped = stop_all(settings_of(ctx))
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
