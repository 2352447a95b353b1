"""`headwater status` on the real stack: a worker of its own, changes written all along.

While the worker runs, its topics read ok; stopped while writes go on, the change topic it
reads is stalled (records behind, the oldest waiting older than ok_lag_s, nothing committed)
and the command exits non-zero; started again, the lag it reported goes back to ok.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from connectors.client import ConnectClient, is_running
from headwater.settings import PROJECT_ROOT, Settings
from indexers.catalog import client
from streams.process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]

TOPIC = "shop.public.products"
OK_LAG_S = 2.0


def ensure_source(settings: Settings) -> None:
    """The shop's source connector running (applied from its file if it is not)."""
    with ConnectClient(settings.connect.url) as connect:
        names = connect.names()
        if "shop-source" in names and is_running(connect.status("shop-source")):
            return
    subprocess.run(
        [sys.executable, "-m", "headwater", "connectors", "apply"], cwd=PROJECT_ROOT, check=True
    )


class Writer:
    """Updates one product about 20 times a second until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.dsn = settings.postgres.dsn()
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            row = db.execute(
                "INSERT INTO products (sku, name, description, category, brand, price, stock) "
                "VALUES (%s, 'Status lantern', 'lag test', 'outdoor', 'Acme', 9.99, 0) "
                "RETURNING id",
                [f"status-{uuid.uuid4().hex[:12]}"],
            ).fetchone()
            assert row is not None
            while not self.stop.wait(0.05):
                db.execute("UPDATE products SET stock = stock + 1 WHERE id = %s", [row[0]])
                self.written += 1

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def env(
    stack: Settings, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[dict[str, str]]:
    ensure_source(stack)
    app_id = unique_name("hw-test-status")
    prefix = f"t-{app_id.rsplit('-', 1)[1]}-"
    env = {
        **os.environ,
        "HW_STREAMS_APP_ID": app_id,
        "HW_INDEXES_PREFIX": prefix,
        "HW_STREAMS_WEB_PORT": str(6700 + int(uuid.uuid4().hex[:4], 16) % 200),
        "HW_STREAMS_DATA_DIR": str(tmp_path / "streams"),
        "HW_STREAMS_AUTO_OFFSET_RESET": "latest",
        "HW_STATUS_OK_LAG_S": str(OK_LAG_S),
        "HW_STATUS_SAMPLE_S": "2",
        "HW_API_WORKERS": "1",
    }
    yield env
    es = client(stack.elasticsearch)
    es.indices.delete(index=f"{prefix}*", allow_no_indices=True)
    for name in ("products", "reviews"):
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}{name}")


def worker(env: dict[str, str], tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(env, int(env["HW_STREAMS_WEB_PORT"]), tmp_path / "worker.log")


def status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "status", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def row(report: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    found = [r for r in report["rows"] if (r["stage"], r["name"]) == (stage, name)]
    assert len(found) == 1, report["rows"]
    return found[0]


def until(env: dict[str, str], done: Callable[[int, dict[str, Any]], bool], wait_s: float) -> Any:
    deadline = time.monotonic() + wait_s
    while True:
        code, report = status(env)
        if done(code, report):
            return code, report
        if time.monotonic() > deadline:
            raise AssertionError(f"status never got there in {wait_s:g} s: {code} {report}")


def test_lag_is_reported_stalled_while_the_worker_is_stopped_then_ok(
    stack: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    first = worker(env, tmp_path)
    first.start()
    try:
        with Writer(stack) as writer:
            # Running and keeping up under writes: its change topic reads ok.
            until(env, lambda c, r: row(r, "kafka", TOPIC)["state"] == "ok", 60)
            ready = httpx.get(first.url("/ready/"), timeout=2).json()
            assert ready["ready"] is True and ready["state"] in ("ok", "busy")
            assert set(ready["checks"]) >= {"rebalancing", "indexes", "lag"}
            assert set(ready["lag"]) == {"state", "behind", "lag_ms", "reason"}

            first.stop()
            time.sleep(OK_LAG_S + 3)  # the first change it missed is older than ok_lag_s
            code, report = status(env)
            stopped = row(report, "kafka", TOPIC)
            assert stopped["state"] == "stalled", report
            assert stopped["behind"] > 0
            assert stopped["lag_ms"] > OK_LAG_S * 1000
            assert row(report, "worker", "worker 0")["state"] == "down"
            assert code == 3  # down wins over stalled; either is non-zero
            assert writer.written > 0
        reported = stopped["lag_ms"]
    finally:
        first.stop()

    again = worker(env, tmp_path)
    again.start()
    try:
        # Caught up: the topic's lag goes back to ok, the worker is up, the command exits 0.
        code, report = until(
            env,
            lambda c, r: (
                row(r, "kafka", TOPIC)["state"] == "ok"
                and row(r, "kafka", TOPIC)["behind"] == 0
                and c == 0
            ),
            90,
        )
        assert row(report, "kafka", TOPIC)["lag_ms"] == 0 < reported
        assert row(report, "worker", "worker 0")["state"] in ("ok", "busy")
        assert row(report, "source", "shop-source")["state"] in ("ok", "busy")
    finally:
        again.stop()
