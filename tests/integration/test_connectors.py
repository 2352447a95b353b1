"""Connectors on the real stack: a change in `shop` reaches Kafka; a bad spec changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from headwater.settings import Settings

pytestmark = pytest.mark.integration


def headwater(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_apply_is_idempotent_and_source_is_running(stack: Settings) -> None:
    first = headwater("connectors", "apply")
    assert first.returncode == 0, first.stdout + first.stderr
    again = headwater("connectors", "apply")
    assert again.returncode == 0, again.stdout + again.stderr
    status = headwater("connectors", "status", "--json")
    assert status.returncode == 0, status.stderr
    source = json.loads(status.stdout)["shop-source"]
    assert source["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in source["tasks"]] == ["RUNNING"]
    # Every captured table has its topic, even one that never changed yet, so a worker that
    # subscribes before the first change still sees it.
    assert "topics:" in first.stdout
    admin = AdminClient(stack.kafka.client_config())
    existing = admin.list_topics(timeout=10).topics
    for table in ("customers", "products", "orders", "order_items", "reviews", "interactions"):
        topic = stack.kafka.cdc_topic(table)
        assert topic in existing, f"{topic} missing after apply"
        assert len(existing[topic].partitions) == 3


def test_inserted_row_appears_as_change_event(stack: Settings, unique_name) -> None:
    topic = stack.kafka.cdc_topic("customers")
    consumer = Consumer(
        {
            **stack.kafka.client_config(),
            "group.id": unique_name("test-cdc"),
            "enable.auto.commit": False,
        }
    )
    try:
        # Start from the current end of every partition, so only the new change is read.
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        assert metadata.error is None, metadata.error
        positions = []
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            positions.append(TopicPartition(topic, partition, high))
        consumer.assign(positions)

        email = f"cdc-{uuid.uuid4().hex[:8]}@example.com"
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
            row_id = conn.execute(
                "INSERT INTO customers (email, full_name, country) VALUES (%s, 'Cdc Test', 'DE')"
                " RETURNING id",
                (email,),
            ).fetchone()[0]  # type: ignore[index]

        deadline = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() or message.value() is None:
                continue
            value = json.loads(message.value())
            if value.get("email") == email:
                found = (json.loads(message.key()), value)
        assert found is not None, f"no change event for {email} on {topic} within 60s"
        key, value = found
        assert key == {"id": row_id}
        assert value["__op"] == "c"
        assert value["__table"] == "customers"
        assert value["__deleted"] in ("false", False)
        assert isinstance(value["__lsn"], int) and value["__lsn"] > 0
    finally:
        consumer.close()


def test_bad_spec_is_refused_naming_the_field_and_changes_nothing(
    stack: Settings, tmp_path: Path, unique_name
) -> None:
    name = unique_name("bad-source")
    shipped = (stack.connect.specs_dir / "shop-source.yaml").read_text()
    bad = (
        shipped.replace("name: shop-source", f"name: {name}")
        .replace("database.port: ${HW_PG_PORT}", "database.port: not-a-port")
        .replace("slot.name: headwater_shop", f"slot.name: {name.replace('-', '_')}")
    )
    (tmp_path / f"{name}.yaml").write_text(bad)
    env = {"HW_CONNECT_SPECS_DIR": str(tmp_path)}

    validated = headwater("connectors", "validate", env=env)
    assert validated.returncode != 0
    assert "database.port" in validated.stdout + validated.stderr

    applied = headwater("connectors", "apply", env=env)
    assert applied.returncode != 0
    assert "nothing was changed" in applied.stdout + applied.stderr
    deployed = httpx.get(f"{stack.connect.url}/connectors", timeout=10).json()
    assert name not in deployed


def test_unknown_connector_class_is_refused(stack: Settings, tmp_path: Path) -> None:
    (tmp_path / "odd-sink.yaml").write_text(
        "name: odd-sink\nconfig:\n  connector.class: com.example.NoSuchConnector\n"
    )
    result = headwater("connectors", "validate", env={"HW_CONNECT_SPECS_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "connector.class" in result.stdout + result.stderr
