"""The local stack's own lifecycle on the real machine: status, down, up, idempotent up.

It stops and starts the stack every other integration test uses, so it runs last
(tests/conftest.py sorts this module to the end) and always leaves the stack up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.settings import Settings
from headwater.stack import procs
from headwater.stack.manager import SERVER_EXECUTABLES
from headwater.stack.services import services_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SERVICES = ["postgres", "kafka", "connect", "elasticsearch"]


def headwater(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", "stack", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def status() -> tuple[int, dict[str, dict[str, object]]]:
    proc = headwater("status", "--json")
    rows = json.loads(proc.stdout)
    return proc.returncode, {row["service"]: row for row in rows}


def up_or_fail() -> None:
    proc = headwater("up")
    assert proc.returncode == 0, f"stack up failed:\n{proc.stdout}\n{proc.stderr}"


def our_servers(data_dir: Path) -> list[tuple[int, list[str]]]:
    """Server processes (java, postgres) whose command line mentions the stack's data dir."""
    found = []
    for pid in procs.parent_map():
        argv = procs.cmdline(pid)
        if (
            argv
            and Path(argv[0]).name in SERVER_EXECUTABLES
            and any(str(data_dir) in a for a in argv)
            and procs.is_alive(pid)
        ):
            found.append((pid, argv[:3]))
    return found


@pytest.fixture(scope="module")
def running(settings: Settings) -> Iterator[Settings]:
    """The stack, up before each test here and left up afterwards for whoever comes next."""
    code, _ = status()
    if code != 0:
        up_or_fail()
    yield settings
    if status()[0] != 0:
        up_or_fail()


def test_status_reports_every_service_healthy_with_its_version(running: Settings) -> None:
    code, rows = status()
    assert code == 0, rows
    assert list(rows) == SERVICES
    for name, row in rows.items():
        assert row["state"] == "healthy", (name, row)
        assert isinstance(row["pid"], int) and procs.is_alive(row["pid"])
        assert row["version"], (name, row)
        assert isinstance(row["rss_mib"], float) and row["rss_mib"] > 0
    assert str(rows["postgres"]["version"]).startswith(f"{running.stack.postgres_major}.")
    assert rows["kafka"]["version"] == running.stack.kafka_version
    assert f"debezium {running.stack.debezium_version}" in str(rows["connect"]["version"])
    assert rows["elasticsearch"]["version"] == running.stack.elasticsearch_version


def test_up_again_restarts_nothing(running: Settings) -> None:
    _, before = status()
    proc = headwater("up")
    assert proc.returncode == 0, proc.stderr
    assert "already running" in proc.stdout
    _, after = status()
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}
    assert all(r["state"] == "healthy" for r in after.values())


def test_down_leaves_nothing_behind_and_up_brings_everything_back(running: Settings) -> None:
    ports = {p for service in services_of(running).values() for p in service.ports}
    try:
        proc = headwater("down")
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"

        code, rows = status()
        assert code == 1
        assert {n: r["state"] for n, r in rows.items()} == dict.fromkeys(SERVICES, "stopped")
        assert ports.isdisjoint(procs.listening_ports())
        assert our_servers(running.stack.data_dir.absolute()) == []

        again = headwater("down")
        assert again.returncode == 0, again.stderr

        up_or_fail()
        code, rows = status()
        assert code == 0, rows
        assert all(r["state"] == "healthy" for r in rows.values()), rows
    finally:
        if status()[0] != 0:
            up_or_fail()


def test_logs_prints_a_service_log_and_rejects_unknown_names(running: Settings) -> None:
    proc = headwater("logs", "kafka", "--lines", "5")
    assert proc.returncode == 0
    assert 0 < len(proc.stdout.splitlines()) <= 5
    bad = headwater("logs", "zookeeper")
    assert bad.returncode != 0
    assert "postgres, kafka, connect, elasticsearch" in bad.stderr
