"""The deletes a new snapshot cannot carry, written after it.

A snapshot reads the rows that exist. A row deleted while the connector could not stream (its
replication slot dropped, recreated or invalidated) is simply absent from it, and every reader
of the change topics keeps that row: an order stays counted on the dashboards, a row stays in a
mirror. So once a new snapshot is in the topics, they are read from the start, and a key whose
newest record is older than the snapshot (not read by it, not changed since) and is not a
delete, and which the source no longer has, gets the delete Debezium would have streamed: its
last row with `__op` d and `__deleted` true, at the snapshot's LSN, then a tombstone, in the
key's partition, with a header saying where it came from. A change streamed after the snapshot
has a larger LSN, so wherever changes are applied newest-LSN-first it still wins.

Memory: the read keeps one small entry per key (its partition, offset, LSN); the rows of the
few keys found missing are fetched again by offset.

`Newest`, `missing` and `delete_record` are pure; the rest talks to Kafka and PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from headwater.settings import KafkaSettings

# The header on every delete written here (value: the snapshot's LSN).
ORIGIN_HEADER = "headwater.gap-delete"
_quiet = logging.getLogger("headwater.connectors.gapdeletes-read")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class Seen:
    """The newest record of one key in a topic."""

    partition: int
    offset: int
    lsn: int
    gone: bool  # a delete or a tombstone


@dataclass
class Newest:
    """What a read of one topic says of its keys: the newest record of each, and the LSN of
    the newest snapshot read (`r`) in it (0: none)."""

    topic: str
    keys: dict[bytes, Seen] = field(default_factory=dict)
    snapshot_lsn: int = 0
    records: int = 0

    def add(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.records += 1
        if key is None:
            return
        if value is None:  # a tombstone: the key is gone (its delete came just before)
            before = self.keys.get(key)
            lsn = before.lsn if before is not None else 0
            self.keys[key] = Seen(partition, offset, lsn, True)
            return
        try:
            payload = orjson.loads(value)
            op, lsn = payload["__op"], int(payload["__lsn"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return  # not a change event: left to the readers' dead letters
        deleted = op == "d" or str(payload.get("__deleted", "")).lower() == "true"
        if op == "r":
            self.snapshot_lsn = max(self.snapshot_lsn, lsn)
        self.keys[key] = Seen(partition, offset, lsn, deleted)


def missing(newest: Newest, snapshot_lsn: int) -> dict[bytes, Seen]:
    """The keys the snapshot at `snapshot_lsn` did not read and that nothing changed since:
    their newest record is older than it and is not a delete."""
    return {k: s for k, s in newest.keys.items() if not s.gone and s.lsn < snapshot_lsn}


def delete_record(value: bytes, snapshot_lsn: int, now_ms: int) -> bytes:
    """The delete of the row in `value` (its newest change event), at `snapshot_lsn`."""
    payload = orjson.loads(value)
    payload["__op"] = "d"
    payload["__deleted"] = "true"
    payload["__lsn"] = snapshot_lsn
    payload["__source_ts_ms"] = now_ms
    if "__sequence" in payload:
        payload["__sequence"] = orjson.dumps([str(snapshot_lsn), str(snapshot_lsn)]).decode()
    return orjson.dumps(payload)


def _text(value: Any) -> str:
    """A key value as PostgreSQL prints it cast to text (for the JSON types a key holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def absent_from_source(
    conn: psycopg.Connection[Any], table: str, keys: Iterable[bytes]
) -> set[bytes]:
    """Which of `keys` (JSON objects of the primary key's columns) table `schema.table` does not
    have."""
    schema, name = table.split(".", 1)
    parsed = {k: orjson.loads(k) for k in keys}
    if not parsed:
        return set()
    columns = sorted(next(iter(parsed.values())))
    texts = {k: tuple(_text(obj[c]) for c in columns) for k, obj in parsed.items()}
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE ({cols}) IN (SELECT * FROM unnest({arrays}))"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        table=sql.Identifier(schema, name),
        arrays=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in columns),
    )
    present: set[tuple[str, ...]] = set()
    items = list(texts.values())
    for start in range(0, len(items), 10_000):
        chunk = items[start : start + 10_000]
        arrays = [[item[i] for item in chunk] for i in range(len(columns))]
        present.update(tuple(row) for row in conn.execute(query, arrays).fetchall())
    return {k for k, t in texts.items() if t not in present}


def _consumer(kafka: KafkaSettings) -> Any:
    """A consumer of the reads here: partitions assigned by hand, nothing committed, the end of
    each partition reported."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            **kafka.client_config(),
            "group.id": "headwater-gap-deletes",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "logger": _quiet,
        }
    )


def read_topics(
    kafka: KafkaSettings, topics: Iterable[str], progress: Callable[[str], None]
) -> list[Newest]:
    """Read each topic from its start to its current end."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    consumer = _consumer(kafka)
    out = []
    try:
        for topic in topics:
            newest = Newest(topic)
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                out.append(newest)
                continue
            ends: dict[int, int] = {}
            for p in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            left, last_said = dict(ends), time.monotonic()
            while left:
                for message in consumer.consume(10_000, timeout=1.0):
                    partition, offset = message.partition() or 0, message.offset() or 0
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            left.pop(partition, None)
                        continue
                    newest.add(partition, offset, message.key(), message.value())
                    if offset + 1 >= ends.get(partition, 0):
                        left.pop(partition, None)
                if time.monotonic() - last_said > 10:
                    progress(f"  reading {topic}: {newest.records:,} records so far")
                    last_said = time.monotonic()
            consumer.unassign()
            out.append(newest)
    finally:
        consumer.close()
    return out


def fetch_values(
    kafka: KafkaSettings, topic: str, seen: Mapping[bytes, Seen]
) -> dict[bytes, bytes]:
    """The record values at the given places of `topic`, by key."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(kafka)
    wanted = {(s.partition, s.offset): k for k, s in seen.items()}
    values: dict[bytes, bytes] = {}
    try:
        for (partition, offset), key in wanted.items():
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + 30
            while key not in values:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {topic}[{partition}]@{offset} again")
                message = consumer.poll(1.0)
                if message is None or message.error() is not None:
                    continue
                if message.offset() == offset and message.value() is not None:
                    values[key] = message.value()
            consumer.unassign()
    finally:
        consumer.close()
    return values


def write_deletes(
    kafka: KafkaSettings, topic: str, rows: Mapping[bytes, tuple[int, bytes]], snapshot_lsn: int
) -> None:
    """For each key, its delete and a tombstone, in its partition; raises if not all written."""
    from confluent_kafka import Producer

    producer = Producer(
        {**kafka.client_config(), "acks": "all", "enable.idempotence": True, "logger": _quiet}
    )
    failed: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failed.append(str(error))

    headers: list[tuple[str, str | bytes | None]] = [(ORIGIN_HEADER, str(snapshot_lsn))]
    now_ms = int(time.time() * 1000)
    for key, (partition, value) in rows.items():
        record = delete_record(value, snapshot_lsn, now_ms)
        producer.produce(topic, record, key, partition, delivered, headers=headers)
        producer.produce(topic, None, key, partition, delivered, headers=headers)
    if producer.flush(60) or failed:
        raise RuntimeError(f"could not write the missed deletes to {topic}: {failed[:1]}")


@dataclass(frozen=True)
class GapDeletes:
    snapshot_lsn: int
    records_read: int
    deletes: dict[str, int]  # topic -> deletes written


def write_missed_deletes(
    kafka: KafkaSettings,
    dsn: str,
    tables: Mapping[str, str],
    progress: Callable[[str], None],
    fallback_lsn: int = 0,
) -> GapDeletes:
    """After a new snapshot of `tables` (topic -> `schema.table`) is in its topics: write the
    delete of each row it did not read and the source no longer has."""
    read = read_topics(kafka, tables, progress)
    snapshot_lsn = max((n.snapshot_lsn for n in read), default=0) or fallback_lsn
    deletes: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for newest in read:
            candidates = missing(newest, snapshot_lsn)
            gone = absent_from_source(conn, tables[newest.topic], candidates)
            if not gone:
                continue
            places = {k: candidates[k] for k in gone}
            values = fetch_values(kafka, newest.topic, places)
            rows = {k: (places[k].partition, v) for k, v in values.items()}
            write_deletes(kafka, newest.topic, rows, snapshot_lsn)
            deletes[newest.topic] = len(rows)
    return GapDeletes(snapshot_lsn, sum(n.records for n in read), deletes)
