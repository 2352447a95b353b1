"""Connector secrets on the real stack: Connect keeps references, and `apply` migrates a
connector deployed with its password in clear, purging it from Connect's configs topic (also
from the task configs of a connector deleted before the migration)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from connectors.purge import holding
from headwater.secrets import find_leaks, searchable
from headwater.settings import PROJECT_ROOT, Settings
from headwater.stack.layout import StackLayout

pytestmark = pytest.mark.integration


def headwater(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def _legacy_config(stack: Settings, name: str) -> dict[str, Any]:
    """A one-table copy of the shop's connector, with its own slot and topic prefix."""
    shipped = yaml.safe_load((PROJECT_ROOT / "connectors/specs/shop-source.yaml").read_text())
    config = {k: str(v) for k, v in shipped["config"].items()}
    slot = name.replace("-", "_")
    config |= {
        "database.hostname": stack.postgres.connect_host,
        "database.port": str(stack.postgres.port),
        "database.user": stack.postgres.user,
        "database.dbname": stack.postgres.source_db,
        "topic.prefix": slot,
        "slot.name": slot,
        "publication.name": slot,
        "table.include.list": "public.products",
        "snapshot.mode": "no_data",
    }
    return config


def _wait_running(connect: str, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = httpx.get(f"{connect}/connectors/{name}/status").json()
        tasks = status.get("tasks") or []
        if tasks and all(t["state"] == "RUNNING" for t in tasks):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} not RUNNING: {status}")


@pytest.fixture
def legacy(stack: Settings) -> Iterator[tuple[str, str]]:
    """Two connectors deployed the old way (password in clear); one of them deleted again."""
    suffix = uuid.uuid4().hex[:8]
    kept, gone = f"legacy-{suffix}", f"gone-{suffix}"
    connect = stack.connect.url
    clear = {"database.password": stack.postgres.password.get_secret_value()}
    for name in (kept, gone):
        response = httpx.put(
            f"{connect}/connectors/{name}/config", json=_legacy_config(stack, name) | clear
        )
        assert response.status_code in (200, 201), response.text
        _wait_running(connect, name)
    httpx.delete(f"{connect}/connectors/{gone}")
    try:
        yield kept, gone
    finally:
        httpx.delete(f"{connect}/connectors/{kept}")
        time.sleep(2)
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
            for name in (kept, gone):
                slot = name.replace("-", "_")
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (slot,),
                )
                conn.execute(f"DROP PUBLICATION IF EXISTS {slot}")


def test_apply_migrates_a_clear_password_and_purges_it_from_the_configs_topic(
    stack: Settings, legacy: tuple[str, str], tmp_path: Path
) -> None:
    kept, _ = legacy
    secrets = searchable(stack.secret_values())
    topic = stack.connect.configs_topic
    assert holding(stack.kafka, topic, secrets).records > 0  # the old way leaves it there

    spec = {
        "name": kept,
        "config": _legacy_config(stack, kept) | {"database.password": "${env:HW_PG_PASSWORD}"},
    }
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / f"{kept}.yaml").write_text(yaml.safe_dump(spec))
    applied = headwater("connectors", "apply", env={"HW_CONNECT_SPECS_DIR": str(specs)})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "purged" in applied.stdout
    assert find_leaks("apply output", (applied.stdout + applied.stderr).encode(), secrets) == []

    base = f"{stack.connect.url}/connectors/{kept}"
    assert httpx.get(f"{base}/config").json()["database.password"] == "${env:HW_PG_PASSWORD}"
    for what in ("config", "tasks", "status"):
        assert find_leaks(what, httpx.get(f"{base}/{what}").content, secrets) == []
    _wait_running(stack.connect.url, kept)
    # Nothing in the topic, and nothing in its files on disk (the local stack's).
    assert holding(stack.kafka, topic, secrets).records == 0
    log_dir = StackLayout.of(stack.stack).kafka_log_dir
    for segment in log_dir.glob(f"{topic}-*/*"):
        assert find_leaks(str(segment), segment.read_bytes(), secrets) == [], segment
    # The topic has its own settings back.
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = AdminClient({**stack.kafka.client_config()})
    config = next(iter(admin.describe_configs([resource]).values())).result(30)
    assert config["segment.ms"].value == "604800000"
