"""All reads and writes of the batch jobs: Kafka offsets and topics, the analytics database."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from headwater.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SCHEMA_SQL = Path(__file__).resolve().parent / "sql" / "analytics.sql"
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
Offsets = dict[str, dict[int, int]]


def connect(settings: Settings, database: str | None = None) -> psycopg.Connection[Any]:
    pg = settings.postgres
    return psycopg.connect(pg.dsn(database or pg.analytics_db))


def ensure_database(settings: Settings) -> None:
    """Create the analytics database when missing (CREATE DATABASE cannot run in a transaction)."""
    pg = settings.postgres
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (pg.analytics_db,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{pg.analytics_db}"')


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        # Serialises concurrent first runs creating the same tables.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('headwater.batch.schema'))")
        conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))


def stored_offsets(conn: psycopg.Connection[Any], job: str) -> Offsets:
    out: Offsets = {}
    for topic, partition, offset in conn.execute(
        "SELECT topic, partition, next_offset FROM batch_offsets WHERE job = %s", (job,)
    ):
        out.setdefault(topic, {})[partition] = offset
    return out


def end_offsets(settings: Settings, topics: Iterable[str]) -> Offsets:
    """The high watermark of each partition now: the exclusive end of this run's window."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": "headwater-batch-watermarks",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=15)
        out: Offsets = {}
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                log.warning("topic %s does not exist yet; nothing to read from it", topic)
                out[topic] = {}
                continue
            out[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for p in sorted(described.partitions)
            }
        return out
    finally:
        consumer.close()


def read_topic(
    spark: SparkSession,
    settings: Settings,
    topic: str,
    start: Mapping[int, int],
    end: Mapping[int, int],
    timeout_ms: int,
) -> DataFrame:
    """The records of `topic` in [start, end) per partition, read by Spark in batch mode."""
    partitions = {p: e for p, e in end.items() if e > start.get(p, 0)}
    if not partitions:
        return spark.createDataFrame([], KAFKA_SCHEMA)
    # -2 is "earliest": a partition never read starts at its first retained record.
    starting = {topic: {str(p): start.get(p, -2) for p in partitions}}
    ending = {topic: {str(p): e for p, e in partitions.items()}}
    reader = spark.read.format("kafka").option(
        "kafka.bootstrap.servers", settings.kafka.bootstrap_servers
    )
    # The cluster's security (SASL, TLS) for Spark's Kafka consumer; none on PLAINTEXT.
    for key, value in settings.kafka.java_client_properties().items():
        reader = reader.option(f"kafka.{key}", value)
    return (
        reader
        # `assign` rather than `subscribe`: only the partitions with something new are read.
        .option("assign", json.dumps({topic: sorted(partitions)}))
        .option("startingOffsets", json.dumps(starting))
        .option("endingOffsets", json.dumps(ending))
        .option("failOnDataLoss", "true")
        .option("kafka.request.timeout.ms", str(timeout_ms))
        .option("kafka.default.api.timeout.ms", str(timeout_ms))
        .load()
    )


def query_frame(
    spark: SparkSession,
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None,
    schema: str,
) -> DataFrame:
    """A small query's result as a Spark DataFrame (context rows the transformations need)."""
    rows = conn.execute(sql, params).fetchall()
    return spark.createDataFrame(rows, schema)


def to_arrow(df: DataFrame) -> pa.Table:
    return df.toArrow()


def copy_arrow(cur: psycopg.Cursor[Any], table: str, data: pa.Table) -> int:
    """COPY an Arrow table into `table` (columns by name) as CSV; returns the row count."""
    import pyarrow.csv as pacsv

    if data.num_rows == 0:
        return 0
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    columns = ", ".join(f'"{c}"' for c in data.column_names)
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        view = buffer.getbuffer()
        step = 1 << 20
        for start in range(0, len(view), step):
            copy.write(view[start : start + step])
    return data.num_rows


def copy_rows(
    cur: psycopg.Cursor[Any],
    table: str,
    data: pa.Table,
    columns: Mapping[str, str] | None = None,
) -> int:
    """COPY an Arrow table into `table` row by row, each value adapted by psycopg.

    Slower than `copy_arrow`'s CSV, but any column type goes: arrays, bytes, JSON text, times.
    `columns` maps Arrow column names to table column names (all columns, same names, if None).
    """
    if data.num_rows == 0:
        return 0
    names = columns or {c: c for c in data.column_names}
    picked = data.select(list(names))
    target = sql.SQL(", ").join(sql.Identifier(c) for c in names.values())
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), target)
    with cur.copy(statement) as copy:
        for batch in picked.to_batches(max_chunksize=10_000):
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                copy.write_row(row)
    return data.num_rows


@dataclass(frozen=True)
class SourceCount:
    """A source table's row count and the WAL position of the snapshot that counted it."""

    rows: int
    lsn: int


def source_count(dsn: str, table: str, attempts: int = 50) -> SourceCount:
    """Count `schema.table` in a snapshot and read the WAL position at that snapshot.

    Changes with an LSN up to `lsn` are the ones the count saw, provided no transaction was in
    flight when the snapshot was taken (its earlier changes would have smaller LSNs but commit
    later): the count is retried until a snapshot has none in flight, `attempts` times at most.
    """
    schema, name = table.split(".")
    counted = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
    found: SourceCount | None = None
    with psycopg.connect(dsn) as conn:
        for _ in range(attempts):
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # The first query takes the snapshot: the position and the in-flight list are
                # read with it, and the count uses the same snapshot.
                position = conn.execute(
                    "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, "
                    "NOT EXISTS (SELECT pg_snapshot_xip(pg_current_snapshot()))"
                ).fetchone()
                rows = conn.execute(counted).fetchone()
            assert position is not None and rows is not None
            found = SourceCount(int(rows[0]), int(position[0]))
            if position[1]:
                return found
            time.sleep(0.05)
    assert found is not None
    log.warning("%s: every snapshot had transactions in flight; counting anyway", table)
    return found


def wait_for_capture(dsn: str, slot: str, lsn: int, timeout_s: float, settle_s: float) -> None:
    """Wait until the connector reading replication `slot` has been sent the WAL up to `lsn`.

    The server's `sent_lsn` advances with the WAL of every database (what the connector itself
    confirms only moves on its status updates, seconds apart); the connector turns what it was
    sent into Kafka records within `settle_s`.
    """
    deadline = time.monotonic() + timeout_s
    sent: int | None = None
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT (r.sent_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots s "
                "JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
                (slot,),
            ).fetchone()
            sent = None if row is None or row[0] is None else int(row[0])
            if sent is not None and sent >= lsn:
                break
            if time.monotonic() > deadline:
                state = "is not streaming" if sent is None else f"is at {sent} < {lsn}"
                raise TimeoutError(
                    f"replication slot {slot} {state} after {timeout_s:.0f}s: "
                    "is its connector running?"
                )
            time.sleep(0.1)
    time.sleep(settle_s)


def record_run(
    conn: psycopg.Connection[Any],
    *,
    job: str,
    kind: str,
    started_at: datetime,
    status: str,
    window: tuple[date | None, date | None],
    rows_loaded: Mapping[str, int],
    offsets: Offsets,
    quality: str,
    report: Path | None,
    error: str | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO batch_runs (job, kind, started_at, finished_at, status, window_from, "
        "window_to, rows_loaded, offsets, quality, report, error) "
        "VALUES (%s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s) RETURNING run_id",
        (
            job,
            kind,
            started_at,
            status,
            window[0],
            window[1],
            json.dumps(dict(rows_loaded)),
            json.dumps({t: {str(p): o for p, o in ps.items()} for t, ps in offsets.items()}),
            quality,
            str(report) if report else None,
            error,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def save_offsets(conn: psycopg.Connection[Any], job: str, offsets: Offsets, run_id: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO batch_offsets (job, topic, partition, next_offset, run_id) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset, run_id = excluded.run_id",
            [(job, t, p, o, run_id) for t, ps in offsets.items() for p, o in ps.items()],
        )


def recent_runs(
    conn: psycopg.Connection[Any], limit: int, job: str | None = None
) -> list[dict[str, Any]]:
    """The last `limit` runs, newest first; of one job (`mirror:NAME` for a mirror) if given."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT run_id, job, kind, status, started_at, finished_at, window_from, window_to, "
            "rows_loaded, offsets, quality, report, error FROM batch_runs "
            "WHERE %(job)s::text IS NULL OR job = %(job)s "
            "ORDER BY run_id DESC LIMIT %(limit)s",
            {"job": job, "limit": limit},
        )
        return list(cur.fetchall())
