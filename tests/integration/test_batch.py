"""The warehouse jobs against the real stack: Kafka topics in, the analytics database out.

Each test gets its own topic prefix and its own analytics database, so a poisoned batch never
reaches the shared topics and tests never share state. `test_shop_changes_reach_the_warehouse`
goes through the shop database and Debezium as well.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pyspark.sql import SparkSession

from batch import io
from batch.jobs import daily_sales, warehouse
from batch.jobs.warehouse import QualityFailed, Window
from batch.settings import BatchSettings
from headwater.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.spark]

STAR = (
    "dim_customer",
    "dim_product",
    "dim_date",
    "fact_order_line",
    "state_orders",
    "batch_offsets",
)


@pytest.fixture
def isolated(stack: Settings) -> Iterator[Settings]:
    """Settings pointing at a fresh topic prefix and a fresh analytics database."""
    suffix = uuid.uuid4().hex[:8]
    db = f"analytics_test_{suffix}"
    settings = stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(update={"topic_prefix": f"batchtest{suffix}"}),
            "postgres": stack.postgres.model_copy(update={"analytics_db": db}),
        }
    )
    yield settings
    with psycopg.connect(stack.postgres.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


Producer = Callable[[str, list[dict[str, Any]]], None]


@pytest.fixture
def produce(isolated: Settings) -> Producer:
    """Write flattened Debezium values (with a tombstone after each delete) to a CDC topic."""
    from confluent_kafka import Producer as KafkaProducer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(isolated.kafka.client_config())
    created: set[str] = set()

    def send(table: str, values: list[dict[str, Any]]) -> None:
        topic = isolated.kafka.cdc_topic(table)
        if topic not in created:
            for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
                future.result()
            created.add(topic)
        producer = KafkaProducer(isolated.kafka.client_config())
        for value in values:
            key = json.dumps({"id": value["id"]}).encode()
            producer.produce(topic, key=key, value=json.dumps(value).encode())
            if value["__op"] == "d":
                producer.produce(topic, key=key, value=None)
        assert producer.flush(30) == 0

    return send


_lsn = iter(range(1_000, 10**9))


def ev(op: str, table: str, **row: Any) -> dict[str, Any]:
    return {
        **row,
        "__op": op,
        "__lsn": next(_lsn),
        "__source_ts_ms": int(time.time() * 1000),
        "__table": table,
        "__deleted": "true" if op == "d" else "false",
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


DAY1 = datetime(2026, 11, 2, 10, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 10, tzinfo=UTC)


def seed(produce: Producer) -> None:
    produce(
        "customers",
        [
            ev(
                "r",
                "customers",
                id=1,
                email="a@x",
                full_name="A",
                country="FR",
                created_at=iso(DAY1 - timedelta(days=9)),
                updated_at=iso(DAY1 - timedelta(days=9)),
            ),
            ev(
                "r",
                "customers",
                id=2,
                email="b@x",
                full_name="B",
                country="IT",
                created_at=iso(DAY1 - timedelta(days=9)),
                updated_at=iso(DAY1 - timedelta(days=9)),
            ),
            ev(
                "u",
                "customers",
                id=1,
                email="a@x",
                full_name="A",
                country="DE",
                created_at=iso(DAY1 - timedelta(days=9)),
                updated_at=iso(DAY2 - timedelta(hours=1)),
            ),
        ],
    )
    produce(
        "products",
        [
            ev(
                "c",
                "products",
                id=p,
                sku=f"S{p}",
                name=f"P{p}",
                description="",
                category="c",
                brand="b",
                price=f"{p}.50",
                stock=5,
                created_at=iso(DAY1),
                updated_at=iso(DAY1),
            )
            for p in (1, 2, 3)
        ]
        + [
            ev(
                "d",
                "products",
                id=3,
                sku="S3",
                name="P3",
                description="",
                category="c",
                brand="b",
                price="3.50",
                stock=5,
                created_at=iso(DAY1),
                updated_at=iso(DAY1),
            )
        ],
    )
    produce(
        "orders",
        [
            ev(
                "c",
                "orders",
                id=10,
                customer_id=1,
                status="pending",
                total="0",
                created_at=iso(DAY1),
                updated_at=iso(DAY1),
            ),
            ev(
                "u",
                "orders",
                id=10,
                customer_id=1,
                status="paid",
                total="4.00",
                created_at=iso(DAY1),
                updated_at=iso(DAY1),
            ),
            ev(
                "c",
                "orders",
                id=11,
                customer_id=1,
                status="pending",
                total="2.50",
                created_at=iso(DAY2),
                updated_at=iso(DAY2),
            ),
            ev(
                "c",
                "orders",
                id=12,
                customer_id=2,
                status="pending",
                total="1.50",
                created_at=iso(DAY2),
                updated_at=iso(DAY2),
            ),
        ],
    )
    produce(
        "order_items",
        [
            ev(
                "c",
                "order_items",
                id=100,
                order_id=10,
                product_id=1,
                quantity=2,
                unit_price="1.50",
                created_at=iso(DAY1),
            ),
            ev(
                "c",
                "order_items",
                id=101,
                order_id=10,
                product_id=2,
                quantity=1,
                unit_price="1.00",
                created_at=iso(DAY1),
            ),
            ev(
                "c",
                "order_items",
                id=102,
                order_id=11,
                product_id=2,
                quantity=1,
                unit_price="2.50",
                created_at=iso(DAY2),
            ),
            ev(
                "c",
                "order_items",
                id=103,
                order_id=12,
                product_id=1,
                quantity=1,
                unit_price="1.50",
                created_at=iso(DAY2),
            ),
            ev(
                "d",
                "order_items",
                id=101,
                order_id=10,
                product_id=2,
                quantity=1,
                unit_price="1.00",
                created_at=iso(DAY1),
            ),
        ],
    )


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with io.connect(settings) as conn:
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in STAR}
        # Offsets without the run that wrote them: a run that reads nothing new keeps them.
        tables["batch_offsets"] = [r[:4] for r in tables["batch_offsets"]]
        return tables


def test_load_is_incremental_idempotent_and_scd2(
    isolated: Settings, produce: Producer, spark: SparkSession, batch_settings: BatchSettings
) -> None:
    seed(produce)
    first = warehouse.run(isolated, batch_settings, Window(), spark)
    assert first.rows["fact_order_line"] == 3
    state = snapshot(isolated)
    facts = {r[0]: r for r in state["fact_order_line"]}
    assert sorted(facts) == [100, 102, 103]  # 101 deleted
    assert [r[0] for r in state["dim_product"]] == [1, 2]  # 3 deleted
    versions = [(r[1], r[4], r[7]) for r in state["dim_customer"]]
    assert sorted(versions) == [(1, "DE", True), (1, "FR", False), (2, "IT", True)]
    # Order 10 (day 1) belongs to the FR version, order 11 (day 2) to the DE one.
    fr_key = next(r[0] for r in state["dim_customer"] if r[4] == "FR")
    de_key = next(r[0] for r in state["dim_customer"] if r[4] == "DE")
    assert facts[100][4] == fr_key and facts[102][4] == de_key
    assert facts[100][7] == "paid"

    # Nothing new on the topics: a second run changes nothing.
    warehouse.run(isolated, batch_settings, Window(), spark)
    assert snapshot(isolated) == state

    # A later change to an existing order reaches its lines without re-reading the items.
    produce(
        "orders",
        [
            ev(
                "u",
                "orders",
                id=12,
                customer_id=2,
                status="cancelled",
                total="1.50",
                created_at=iso(DAY2),
                updated_at=iso(DAY2),
            )
        ],
    )
    third = warehouse.run(isolated, batch_settings, Window(), spark)
    assert third.rows["fact_order_line"] == 1
    after = snapshot(isolated)
    assert {r[0]: r[7] for r in after["fact_order_line"]}[103] == "cancelled"

    # A backfill of day 2 replays the topics and leaves identical tables.
    warehouse.run(isolated, batch_settings, Window(date(2026, 11, 3), date(2026, 11, 3)), spark)
    assert snapshot(isolated) == after

    daily_sales.run(isolated, batch_settings, Window(), spark)
    with io.connect(isolated) as conn:
        agg = conn.execute(
            "SELECT date_key, orders, units, revenue::text FROM agg_daily_sales ORDER BY 1"
        ).fetchall()
    assert agg == [(20261102, 1, 2, "3.00"), (20261103, 1, 1, "2.50")]


def test_poisoned_batch_fails_and_leaves_the_warehouse_untouched(
    isolated: Settings, produce: Producer, spark: SparkSession, batch_settings: BatchSettings
) -> None:
    seed(produce)
    warehouse.run(isolated, batch_settings, Window(), spark)
    before = snapshot(isolated)
    produce(
        "order_items",
        [
            # A negative price and a product that does not exist.
            ev(
                "c",
                "order_items",
                id=200,
                order_id=10,
                product_id=1,
                quantity=1,
                unit_price="-5.00",
                created_at=iso(DAY1),
            ),
            ev(
                "c",
                "order_items",
                id=201,
                order_id=10,
                product_id=999,
                quantity=1,
                unit_price="1.00",
                created_at=iso(DAY1),
            ),
        ],
    )
    with pytest.raises(QualityFailed) as failed:
        warehouse.run(isolated, batch_settings, Window(), spark)
    assert snapshot(isolated) == before
    report = failed.value.report.read_text()
    assert "FAILED" in report and "_product_found" in report and "unit_price" in report
    with io.connect(isolated) as conn:
        last = conn.execute(
            "SELECT status, quality FROM batch_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    assert last == ("failed", "failed")


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError("condition not met in time")


def test_shop_changes_reach_the_warehouse(
    stack: Settings, spark: SparkSession, batch_settings: BatchSettings
) -> None:
    """Through Debezium: the shop's current state equals the warehouse's after a run."""
    with psycopg.connect(stack.postgres.dsn(stack.postgres.source_db), autocommit=True) as shop:
        if shop.execute("SELECT to_regclass('public.order_items')").fetchone() == (None,):
            pytest.fail("the shop schema is missing: run `headwater db migrate`")
        tag = uuid.uuid4().hex[:8]
        (cid,) = _one(
            shop,
            "INSERT INTO customers (email, full_name, country) VALUES "
            "(%s, 'Batch Test', 'FR') RETURNING id",
            (f"{tag}@b.test",),
        )
        (pid,) = _one(
            shop,
            "INSERT INTO products (sku, name, category, brand, price) VALUES "
            "(%s, 'thing', 'c', 'b', 3.25) RETURNING id",
            (tag,),
        )
        (oid,) = _one(shop, "INSERT INTO orders (customer_id) VALUES (%s) RETURNING id", (cid,))
        shop.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
            "VALUES (%s, %s, 2, 3.25)",
            (oid, pid),
        )
        shop.execute(
            "UPDATE customers SET country = 'ES', updated_at = now() WHERE id = %s", (cid,)
        )

    def item_in_topic() -> bool:
        ends = io.end_offsets(stack, [stack.kafka.cdc_topic("order_items")])
        return sum(ends[stack.kafka.cdc_topic("order_items")].values()) > 0

    _wait_for(item_in_topic)
    deadline = time.monotonic() + 90
    while True:
        warehouse.run(stack, batch_settings, Window(), spark)
        with io.connect(stack) as conn:
            line = conn.execute(
                "SELECT quantity, line_amount::text, customer_key "
                "FROM fact_order_line WHERE order_id = %s",
                (oid,),
            ).fetchone()
            current = conn.execute(
                "SELECT country FROM dim_customer WHERE customer_id = %s AND is_current", (cid,)
            ).fetchone()
        if (line and current == ("ES",)) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert line is not None and line[:2] == (2, "6.50")
    assert current == ("ES",)
    before = snapshot(stack)
    warehouse.run(stack, batch_settings, Window(), spark)
    after = snapshot(stack)
    # Other writers may be changing the shop concurrently; our rows at least are unchanged.
    assert [r for r in after["fact_order_line"] if r[1] == oid] == [
        r for r in before["fact_order_line"] if r[1] == oid
    ]
