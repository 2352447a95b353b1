"""`headwater bench batch`: the warehouse load of N order lines end to end against plain COPY.

Runs on its own topic prefix and its own analytics database, both removed afterwards: synthetic
change events go to Kafka, the warehouse job loads them (timed per step), and the same fact rows
are then written by PostgreSQL COPY into a bare table as the reference for the load step.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from batch import io
from batch.jobs import warehouse
from batch.settings import BatchSettings
from headwater.settings import Settings


@dataclass(frozen=True)
class BatchBench:
    order_lines: int
    produce_s: float
    spark_startup_s: float
    extract_transform_s: float
    load_s: float
    end_to_end_s: float
    copy_s: float
    rows_per_s: float
    copy_rows_per_s: float
    load_vs_copy: float
    target_met: bool
    load_phases: dict[str, float] = field(default_factory=dict)

    def table(self) -> list[tuple[str, str]]:
        return [
            ("order lines", f"{self.order_lines:,}"),
            ("produce events to Kafka", f"{self.produce_s:.1f} s"),
            ("Spark start-up", f"{self.spark_startup_s:.1f} s"),
            ("extract + transform", f"{self.extract_transform_s:.1f} s"),
            ("load (stage, validate, merge, commit)", f"{self.load_s:.1f} s"),
            *((f"  {phase}", f"{s:.1f} s") for phase, s in self.load_phases.items()),
            ("job end to end (excl. start-up)", f"{self.end_to_end_s:.1f} s"),
            ("rows/s end to end", f"{self.rows_per_s:,.0f}"),
            ("reference: COPY of the same rows", f"{self.copy_s:.1f} s"),
            ("COPY rows/s", f"{self.copy_rows_per_s:,.0f}"),
            ("load / COPY (target <= 3x)", f"{self.load_vs_copy:.2f}x"),
            ("target met", "yes" if self.target_met else "NO"),
        ]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _meta(op: str, lsn: int, table: str) -> dict[str, Any]:
    return {"__op": op, "__lsn": lsn, "__source_ts_ms": lsn, "__table": table, "__deleted": "false"}


def _produce(settings: Settings, lines: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    rng = random.Random(7)
    customers, products, per_order = 2_000, 1_000, 4
    orders = max(1, lines // per_order)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
    admin = AdminClient({**settings.kafka.client_config()})
    tables = ("customers", "products", "orders", "order_items")
    for future in admin.create_topics(
        [NewTopic(settings.kafka.cdc_topic(t), 3, 1) for t in tables]
    ).values():
        future.result()
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    lsn = 0

    def send(table: str, row: dict[str, Any]) -> None:
        nonlocal lsn
        lsn += 1
        value = json.dumps({**row, **_meta("r", lsn, table)}).encode()
        while True:
            try:
                producer.produce(
                    settings.kafka.cdc_topic(table), key=b'{"id":%d}' % row["id"], value=value
                )
                return
            except BufferError:
                producer.poll(0.5)

    created = _iso(base - timedelta(days=30))
    for c in range(1, customers + 1):
        send(
            "customers",
            {
                "id": c,
                "email": f"c{c}@bench",
                "full_name": f"C {c}",
                "country": "FR",
                "created_at": created,
                "updated_at": created,
            },
        )
    for p in range(1, products + 1):
        send(
            "products",
            {
                "id": p,
                "sku": f"S{p}",
                "name": f"P{p}",
                "description": "",
                "category": "c",
                "brand": "b",
                "price": f"{p % 97 + 1}.99",
                "stock": 10,
                "created_at": created,
                "updated_at": created,
            },
        )
    item = 0
    for o in range(1, orders + 1):
        at = _iso(base + timedelta(seconds=o * 20))
        send(
            "orders",
            {
                "id": o,
                "customer_id": rng.randint(1, customers),
                "status": "paid",
                "total": "0",
                "created_at": at,
                "updated_at": at,
            },
        )
        for _ in range(per_order if o < orders else lines - item):
            item += 1
            send(
                "order_items",
                {
                    "id": item,
                    "order_id": o,
                    "product_id": rng.randint(1, products),
                    "quantity": rng.randint(1, 5),
                    "unit_price": f"{rng.randint(1, 9999) / 100:.2f}",
                    "created_at": at,
                },
            )
        producer.poll(0)
    assert producer.flush(120) == 0


def _copy_reference(conn: psycopg.Connection[Any], facts: Any) -> float:
    import pyarrow.csv as pacsv

    conn.execute("CREATE TABLE copy_reference (LIKE fact_order_line INCLUDING ALL)")
    conn.commit()
    began = time.perf_counter()
    buffer = _io.BytesIO()
    pacsv.write_csv(facts, buffer, pacsv.WriteOptions(include_header=False))
    columns = ", ".join(facts.column_names)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY copy_reference ({columns}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        copy.write(buffer.getvalue())
    conn.commit()
    return time.perf_counter() - began


def run_batch_bench(
    settings: Settings,
    batch: BatchSettings,
    lines: int,
    say: Callable[[str], None] = lambda line: None,
) -> BatchBench:
    from batch.spark import build_session

    suffix = uuid.uuid4().hex[:8]
    db = f"analytics_bench_{suffix}"
    isolated = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": f"benchbatch{suffix}"}),
            "postgres": settings.postgres.model_copy(update={"analytics_db": db}),
        }
    )
    try:
        say(f"producing the change events of {lines:,} order lines ...")
        began = time.perf_counter()
        _produce(isolated, lines)
        produced = time.perf_counter() - began

        say(f"  {produced:.1f}s; starting Spark ...")
        began = time.perf_counter()
        spark = build_session(isolated, batch, "headwater-bench-batch")
        spark.range(1).collect()
        startup = time.perf_counter() - began

        io.ensure_database(isolated)
        window = warehouse.Window()
        with io.connect(isolated) as conn:
            io.ensure_schema(conn)
            say(f"  {startup:.1f}s; extract and transform ...")
            began = time.perf_counter()
            ex = warehouse.extract(spark, isolated, batch, conn, window)
            mat = warehouse.materialize(warehouse.transform(ex, window), window)
            extract_transform = time.perf_counter() - began
            say(f"  {extract_transform:.1f}s; load (stage, validate, merge) ...")
            result = warehouse.load(conn, batch, mat, window, ex.end, datetime.now(UTC))
            end_to_end = extract_transform + result.seconds
            facts = mat.tables["fact_order_line"]
            assert facts.num_rows == lines, f"loaded {facts.num_rows} of {lines} lines"
            say(f"  {result.seconds:.1f}s; reference: COPY of the same rows ...")
            copy_s = _copy_reference(conn, facts)
        spark.stop()
        ratio = result.seconds / copy_s
        return BatchBench(
            order_lines=lines,
            produce_s=produced,
            spark_startup_s=startup,
            extract_transform_s=extract_transform,
            load_s=result.seconds,
            end_to_end_s=end_to_end,
            copy_s=copy_s,
            rows_per_s=lines / end_to_end,
            copy_rows_per_s=lines / copy_s,
            load_vs_copy=ratio,
            target_met=ratio <= 3.0,
            load_phases=result.phases,
        )
    finally:
        _cleanup(settings, isolated, db)


def _cleanup(settings: Settings, isolated: Settings, db: str) -> None:
    from confluent_kafka.admin import AdminClient

    with psycopg.connect(settings.postgres.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    admin = AdminClient({**settings.kafka.client_config()})
    topics = [isolated.kafka.cdc_topic(t) for t in warehouse.TABLES]
    for future in admin.delete_topics(topics).values():
        with contextlib.suppress(Exception):  # a topic never created is already gone
            future.result()


def bench_batch_command(settings: Settings, lines: int, as_json: bool) -> None:
    """What `headwater bench batch` runs: measure, print a table (or JSON), save the JSON."""
    from headwater.console import console, err_console, print_json, print_table, save_result

    result = run_batch_bench(settings, BatchSettings(), lines, err_console.print)
    path = save_result(settings.stack.data_dir / "bench", "batch", asdict(result))
    if as_json:
        print_json(asdict(result))
        return
    print_table("Batch warehouse load benchmark", ["measure", "value"], result.table())
    console.print(f"saved {path}")
