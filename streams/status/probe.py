"""Looks at the running pipeline for `headwater status`: connectors, slots, offsets, workers.

One `look` reads, at one moment: each connector's state from Kafka Connect, its replication
slot from PostgreSQL, the worker group's committed offsets and the high watermarks from Kafka
(with the timestamp of the oldest record the group has not processed, and of the newest record
of each connector's topics), and each worker's stage histograms and readiness page. A part
that cannot be read is left empty and named in `errors`; `rows` then reports it as down.
`rows` turns two looks into `streams.status.logic.Row`s.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.client import ConnectClient, ConnectError, is_running
from connectors.sources import POSTGRES_CONNECTOR
from connectors.spec import load_specs
from headwater.settings import KafkaSettings, Settings, StatusSettings
from streams.settings import StreamsSettings
from streams.status.logic import (
    Offsets,
    Row,
    Slot,
    consumer_rows,
    sink_row,
    source_row,
    wal_row,
)

TIMEOUT_S = 5.0
# Debezium's own name for a slot when the connector file names none.
DEFAULT_SLOT = "debezium"


@dataclass(frozen=True)
class Source:
    """A Debezium PostgreSQL connector: its slot and its change topics."""

    connector: str
    slot: str
    topics: tuple[str, ...]


def sources(settings: Settings) -> list[Source]:
    """The PostgreSQL source connectors of the connector files."""
    out = []
    for spec in load_specs(settings.connect.specs_dir, settings.interpolation_env()):
        if spec.connector_class != POSTGRES_CONNECTOR:
            continue
        config = spec.config
        prefix = config.get("topic.prefix", "")
        tables = [t.strip() for t in config.get("table.include.list", "").split(",") if t.strip()]
        topics = tuple(f"{prefix}.{table}" for table in tables)
        out.append(Source(spec.name, config.get("slot.name", DEFAULT_SLOT), topics))
    return out


@dataclass
class Look:
    at_ms: float
    connectors: dict[str, str | None] = field(default_factory=dict)  # state; None: missing
    slots: dict[str, Slot] = field(default_factory=dict)
    offsets: list[Offsets] = field(default_factory=list)
    newest_delay_ms: dict[str, float | None] = field(default_factory=dict)  # per connector
    stats: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # per worker
    ready: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # per worker
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be read


def _connector_states(connect_url: str, names: list[str]) -> dict[str, str | None]:
    with ConnectClient(connect_url, timeout_s=TIMEOUT_S) as client:
        statuses = client.statuses()
    out: dict[str, str | None] = {}
    for name in names:
        status = statuses.get(name)
        if status is None:
            out[name] = None
        elif is_running(status):
            out[name] = "RUNNING"
        else:
            states = [status.get("connector", {}).get("state")]
            states += [t.get("state") for t in status.get("tasks", [])]
            out[name] = next((s for s in states if s and s != "RUNNING"), "NO TASKS")
    return out


_SLOTS = """
SELECT s.slot_name, s.active, s.wal_status,
       pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::bigint,
       pg_wal_lsn_diff(s.restart_lsn, '0/0')::bigint,
       pg_wal_lsn_diff(r.sent_lsn, '0/0')::bigint
FROM pg_replication_slots s
LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = ANY(%s)
"""


def _slots(dsn: str, names: list[str]) -> dict[str, Slot]:
    with psycopg.connect(dsn, connect_timeout=int(TIMEOUT_S), autocommit=True) as conn:
        found = conn.execute(_SLOTS, [names]).fetchall()
    return {
        name: Slot(name, active, wal, restart, sent, wal_status)
        for name, active, wal_status, wal, restart, sent in found
    }


def _committed(kafka: KafkaSettings, group: str) -> list[TopicPartition]:
    # log_level 4: no notices on stderr when the client is dropped (the table is on stdout).
    admin = AdminClient({**kafka.client_config(), "log_level": 4})
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = futures[group].result(timeout=TIMEOUT_S)
    return [tp for tp in result.topic_partitions or [] if tp.error is None]


def records_at(consumer: Consumer, offsets: Mapping[tuple[str, int], int]) -> dict[Any, Any]:
    """The first record at or after each (topic, partition)'s offset, read without a group."""
    if not offsets:
        return {}
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
    found: dict[tuple[str, int], Any] = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(found) < len(offsets) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                topic, partition = message.topic(), message.partition()
                if message.error() is None and topic is not None and partition is not None:
                    found.setdefault((topic, partition), message)
    finally:
        consumer.unassign()
    return found


def _source_delay(message: Any) -> float | None:
    """Kafka timestamp minus the source commit time (`__source_ts_ms`) of a change record."""
    if message is None or message.value() is None:
        return None
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        source_ts = json.loads(message.value()).get("__source_ts_ms")
        _, kafka_ts = message.timestamp()
        if source_ts and kafka_ts > 0:
            return float(kafka_ts - source_ts)
    return None


def _kafka(
    kafka: KafkaSettings, group: str, srcs: list[Source]
) -> tuple[list[Offsets], dict[str, float | None]]:
    committed = _committed(kafka, group)
    reader = Consumer({
        **kafka.client_config(),
        # Never subscribes or commits: the group id only satisfies the client.
        "group.id": f"headwater-status-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })  # fmt: skip
    try:
        metadata = reader.list_topics(timeout=TIMEOUT_S).topics
        marks: dict[tuple[str, int], tuple[int, int]] = {}

        def watermarks(topic: str, partition: int) -> tuple[int, int]:
            if (topic, partition) not in marks:
                tp = TopicPartition(topic, partition)
                marks[(topic, partition)] = reader.get_watermark_offsets(
                    tp, timeout=TIMEOUT_S, cached=False
                )
            return marks[(topic, partition)]

        partitions = []
        for tp in committed:
            if tp.topic not in metadata:
                continue
            low, high = watermarks(tp.topic, tp.partition)
            offset = tp.offset if tp.offset >= 0 else None
            partitions.append(Offsets(tp.topic, tp.partition, offset, low, high))
        waiting = records_at(
            reader, {(p.topic, p.partition): p.position for p in partitions if p.behind}
        )
        offsets = []
        for p in partitions:
            message = waiting.get((p.topic, p.partition))
            ts = message.timestamp()[1] if message is not None else None
            offsets.append(
                Offsets(p.topic, p.partition, p.committed, p.low, p.high, ts if ts else None)
            )
        newest_at: dict[tuple[str, int], int] = {}
        for source in srcs:
            for topic in source.topics:
                for partition in sorted(metadata[topic].partitions) if topic in metadata else []:
                    low, high = watermarks(topic, partition)
                    if high > low:
                        newest_at[(topic, partition)] = high - 1
        newest = records_at(reader, newest_at)
        delays: dict[str, float | None] = {}
        for source in srcs:
            mine = [m for (t, _), m in newest.items() if t in source.topics]
            mine.sort(key=lambda m: m.timestamp()[1])
            delays[source.connector] = next(
                (d for m in reversed(mine) if (d := _source_delay(m)) is not None), None
            )
        return offsets, delays
    finally:
        reader.close()


def _worker(url: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A worker's stage histograms and its readiness page (read whatever its status)."""
    try:
        stats = httpx.get(f"{url}/search/stats/", timeout=TIMEOUT_S).json()
        ready = httpx.get(f"{url}/ready/", timeout=TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return None, None
    return stats, ready


def worker_urls(streams: StreamsSettings, workers: int) -> dict[str, str]:
    return {
        f"worker {i}": f"http://{streams.web_host}:{streams.worker_port(i)}" for i in range(workers)
    }


def look(settings: Settings, streams: StreamsSettings, srcs: list[Source], workers: int) -> Look:
    """Everything `rows` needs, read now; a part that fails is named in `errors`."""
    out = Look(at_ms=time.time() * 1000)
    names = [s.connector for s in srcs]
    try:
        out.connectors = _connector_states(settings.connect.url, names)
    except ConnectError as exc:
        out.errors["connect"] = str(exc)
    try:
        out.slots = _slots(settings.postgres.dsn(), [s.slot for s in srcs])
    except psycopg.Error as exc:
        out.errors["postgres"] = str(exc).strip().splitlines()[0]
    try:
        out.offsets, out.newest_delay_ms = _kafka(settings.kafka, streams.app_id, srcs)
    except (KafkaException, TimeoutError) as exc:
        out.errors["kafka"] = str(exc)
    for name, url in worker_urls(streams, workers).items():
        out.stats[name], out.ready[name] = _worker(url)
    return out


def rows(
    earlier: Look, later: Look, srcs: list[Source], group: str, status: StatusSettings
) -> list[Row]:
    """Every stage's row from two looks: sources, their WAL, the group's topics, the workers."""
    ok_lag_ms = status.ok_lag_s * 1000
    interval_s = round((later.at_ms - earlier.at_ms) / 1000, 1)
    out: list[Row] = []
    for src in srcs:
        if "connect" in later.errors or "postgres" in later.errors:
            part = "connect" if "connect" in later.errors else "postgres"
            out.append(Row("source", src.connector, "down", detail=later.errors[part]))
        else:
            out.append(
                source_row(
                    src.connector,
                    later.connectors.get(src.connector),
                    src.slot,
                    earlier.slots.get(src.slot),
                    later.slots.get(src.slot),
                    later.newest_delay_ms.get(src.connector),
                )
            )
    for src in srcs:
        if "postgres" in later.errors:
            out.append(Row("wal", src.slot, "down", detail=later.errors["postgres"]))
        else:
            slot_earlier, slot_later = earlier.slots.get(src.slot), later.slots.get(src.slot)
            out.append(wal_row(src.slot, slot_earlier, slot_later, status.wal_warn_bytes))
    if "kafka" in later.errors:
        out.append(Row("kafka", f"group {group}", "down", detail=later.errors["kafka"]))
    else:
        kafka_rows = consumer_rows(
            earlier.offsets, later.offsets, later.at_ms, ok_lag_ms, interval_s
        )
        if not kafka_rows:
            out.append(Row("kafka", f"group {group}", "down", detail="no committed offsets"))
        out += kafka_rows
    for name in later.stats:
        out.append(sink_row(name, earlier.stats.get(name), later.stats[name], later.ready[name]))
    return out


def status(
    settings: Settings, streams: StreamsSettings, workers: int, interval_s: float
) -> list[Row]:
    """Two looks `interval_s` apart, as rows."""
    srcs = sources(settings)
    first = look(settings, streams, srcs, workers)
    time.sleep(max(0.0, interval_s - (time.time() * 1000 - first.at_ms) / 1000))
    second = look(settings, streams, srcs, workers)
    return rows(first, second, srcs, streams.app_id, settings.status)
