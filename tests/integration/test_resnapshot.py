"""`connectors resnapshot` writes the deletes a new snapshot cannot carry (real PostgreSQL,
Debezium and Kafka; a database, connector and topic of the test's own)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.client import ConnectClient, ConnectError
from connectors.gapdeletes import ORIGIN_HEADER
from connectors.resnapshot import drop_slot, resnapshot
from connectors.spec import ConnectorSpec
from headwater.settings import PROJECT_ROOT, Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# A composite key and the default replica identity (a real delete carries only the key).
SCHEMA = """
CREATE TABLE ledger (shop text, n int, note text NOT NULL, PRIMARY KEY (shop, n));
INSERT INTO ledger VALUES ('a', 1, 'one'), ('a', 2, 'two'), ('a', 3, 'three'),
  ('a', 4, 'four'), ('a', 5, 'five'), ('a', 6, 'six'), ('b', 1, 'b-one');
"""


@dataclass
class Own:
    settings: Settings
    database: str
    name: str
    prefix: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}.public.ledger"

    def dsn(self) -> str:
        return self.settings.postgres.dsn(self.database)


def _spec(own: Own) -> ConnectorSpec:
    shipped = yaml.safe_load((PROJECT_ROOT / "connectors/specs/shop-source.yaml").read_text())
    config = {k: str(v) for k, v in shipped["config"].items()}
    config.update(
        {
            "database.hostname": own.settings.postgres.connect_host,
            "database.port": str(own.settings.postgres.port),
            "database.user": own.settings.postgres.user,
            "database.dbname": own.database,
            "topic.prefix": own.prefix,
            "slot.name": own.prefix,
            "publication.name": own.prefix,
            "table.include.list": "public.ledger",
        }
    )
    return ConnectorSpec(name=own.name, config=config, path=Path(f"{own.name}.yaml"))


def _records(settings: Settings, topic: str) -> list[tuple[int, Any, Any, dict[str, bytes]]]:
    """Every record of `topic`: (partition, key, value, headers), keys and values decoded."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out, ended = [], set()
        deadline = time.monotonic() + 30
        while len(ended) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            value = message.value()
            out.append(
                (
                    message.partition() or 0,
                    orjson.loads(message.key() or b"null"),
                    None if value is None else orjson.loads(value),
                    dict(message.headers() or []),
                )
            )
        return out
    finally:
        consumer.close()


def _wait_for(settings: Settings, topic: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 120
    while True:
        records = _records(settings, topic) if _exists(settings, topic) else []
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(1)


def _exists(settings: Settings, topic: str) -> bool:
    admin = AdminClient(settings.kafka.client_config())
    return topic in admin.list_topics(timeout=10).topics


@pytest.fixture
def own(stack: Settings) -> Iterator[Own]:
    suffix = uuid.uuid4().hex[:8]
    own = Own(stack, f"hw_gap_{suffix}", f"gap-{suffix}", f"gap{suffix}")
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{own.database}"')
    with psycopg.connect(own.dsn(), autocommit=True) as conn:
        conn.execute(SCHEMA)
    try:
        yield own
    finally:
        with ConnectClient(stack.connect.url) as client:
            if client.config(own.name) is not None:
                client.delete(own.name)
        with contextlib.suppress(ConnectError):  # still in use after 30 s: left to the stack
            drop_slot(stack.postgres.dsn(), own.prefix)
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)')
        admin_client = AdminClient(stack.kafka.client_config())
        for future in admin_client.delete_topics([own.topic]).values():
            with contextlib.suppress(Exception):  # never created: nothing to remove
                future.result(30)


def test_rows_deleted_while_the_slot_was_gone_are_deleted_after_the_new_snapshot(
    own: Own,
) -> None:
    settings = own.settings
    with ConnectClient(settings.connect.url) as client:
        client.put(_spec(own))
        client.wait_running(own.name, 120)
        assert len(_wait_for(settings, own.topic, 7)) == 7
        with psycopg.connect(own.dsn(), autocommit=True) as conn:
            conn.execute("UPDATE ledger SET note = 'one, changed' WHERE shop = 'a' AND n = 1")
        assert len(_wait_for(settings, own.topic, 8)) == 8

        # The gap: the connector is stopped and its slot will be dropped, so these changes
        # are never streamed.
        client.stop(own.name)
        client.wait_state(own.name, "STOPPED", 60)
        with psycopg.connect(own.dsn(), autocommit=True) as conn:
            conn.execute("DELETE FROM ledger WHERE shop = 'a' AND n IN (2, 3, 4)")
            conn.execute("INSERT INTO ledger VALUES ('a', 4, 'four again'), ('a', 7, 'seven')")

        lines: list[str] = []
        done = resnapshot(client, settings.postgres, settings.kafka, own.name, 120, lines.append)
        assert done.slot_dropped
        assert done.gap is not None, lines
        assert done.gap.deletes == {own.topic: 2}, lines

        records = _records(settings, own.topic)
        reads = [r for r in records if r[2] is not None and r[2]["__op"] == "r"]
        snapshot_lsn = max(r[2]["__lsn"] for r in reads)
        assert done.gap.snapshot_lsn == snapshot_lsn
        written = [r for r in records if ORIGIN_HEADER in r[3]]
        deletes = {(r[1]["shop"], r[1]["n"]): r for r in written if r[2] is not None}
        assert set(deletes) == {("a", 2), ("a", 3)}
        for (shop, n), (partition, _, value, _) in deletes.items():
            assert value["__op"] == "d" and value["__deleted"] == "true"
            assert value["__lsn"] == snapshot_lsn
            assert value["note"] == {2: "two", 3: "three"}[n]  # the row's last values
            # Each delete goes to its key's partition, with a tombstone after it.
            originals = [r for r in reads + records[:8] if r[1] == {"shop": shop, "n": n}]
            assert {r[0] for r in originals} == {partition}
        tombstones = [(r[0], r[1]) for r in written if r[2] is None]
        assert sorted(tombstones, key=str) == sorted(
            [(d[0], d[1]) for d in deletes.values()], key=str
        )

        # Nothing more to write the second time: the topic tells the truth already.
        again = resnapshot(client, settings.postgres, settings.kafka, own.name, 120, lines.append)
        assert again.gap is not None and again.gap.deletes == {}, lines
