"""Verifying the dashboards on the real stack: a worker of the test's own, started at the end of
the change topics as `headwater chaos` starts its own, a workload written to the shop database,
then `verify` recomputes the windows from the source: all equal; and one cell damaged on the
worker's updates topic is reported as exactly that difference.

The stack is shared: other writers may change the shop meanwhile. Their changes reach this
worker too; windows still moving are in flight, never differences.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from headwater.models.updates import WindowUpdate, encode
from headwater.settings import Settings
from streams.dashboards import logic
from streams.dashboards.reconcile import UpdatesReader, reconcile_dashboards, verify
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.verify import Report
from streams.process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT_S = 90.0


class Worker(WorkerProcess):
    def __init__(self, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.app_id = f"hw-test-dash-{suffix}"
        self.prefix = f"t-dash-{suffix}-"
        self.updates_topic = f"{self.app_id}.updates"
        port = 6200 + int(suffix[:4], 16) % 500
        env = {
            **os.environ,
            "HW_STREAMS_APP_ID": self.app_id,
            "HW_INDEXES_PREFIX": self.prefix,
            "HW_STREAMS_WEB_PORT": str(port),
            "HW_STREAMS_DATA_DIR": str(tmp / "streams"),
            "HW_STREAMS_AUTO_OFFSET_RESET": "latest",
            "HW_DASHBOARDS_UPDATES_TOPIC": self.updates_topic,
        }
        super().__init__(env, port, tmp / "worker.log")
        self.since = 0.0


@pytest.fixture(scope="module")
def worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    running = Worker(tmp_path_factory.mktemp("dash-verify-worker"))
    running.start()
    time.sleep(2)  # the new group settles at the end of the topics
    # Ready means its start is pinned: every row written from now on reaches it.
    running.since = time.time()
    yield running
    running.stop()
    from indexers.catalog import client

    es = client(stack.elasticsearch)
    es.indices.delete(index=f"{running.prefix}*", allow_no_indices=True)
    for name in ("products", "reviews"):
        es.options(ignore_status=404).indices.delete_index_template(name=f"{running.prefix}{name}")
    admin = AdminClient({**stack.kafka.client_config()})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(running.app_id)]
    if names:
        for future in admin.delete_topics(names).values():
            future.exception()  # best effort: a leftover test topic harms nobody


@pytest.fixture
def db(stack: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
        yield conn


def _insert(db: psycopg.Connection[Any], sql: str, params: list[Any]) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def _order(db: psycopg.Connection[Any], customer: int, lines: list[tuple[int, int, str]]) -> int:
    """An order with its lines (product, quantity, unit price), as the shop writes one."""
    with db.transaction():
        order_id = _insert(
            db, "INSERT INTO orders (customer_id) VALUES (%s) RETURNING id", [customer]
        )
        for product, quantity, price in lines:
            db.execute(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                "VALUES (%s, %s, %s, %s)",
                [order_id, product, quantity, price],
            )
        db.execute(
            "UPDATE orders SET total = (SELECT sum(quantity * unit_price) FROM order_items "
            "WHERE order_id = %s) WHERE id = %s",
            [order_id, order_id],
        )
    return order_id


def _settled(stack: Settings, ds: DashboardSettings, since: float, done: Any) -> Report:
    """Verify until `done(report)` holds (windows still moving under others' writes may stay in
    flight), up to WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            report = verify(stack, ds, since=since, settle_s=3.0, within_s=10.0)
        except LookupError:  # the worker has not published anything yet
            report = None
        if report is not None and done(report):
            return report
        if time.monotonic() > deadline:
            shown = None if report is None else [c.to_json() for c in report.differences[:10]]
            raise AssertionError(f"dashboards != source after {WAIT_S}s: {shown}")
        time.sleep(1.0)


def _cell(report: Report, key: tuple[str, str, int, str | None]) -> Any:
    for cell in (*report.cells, *report.in_flight):
        if cell.key == key:
            return cell
    raise AssertionError(f"{key} was not compared")


def test_verify_finds_the_dashboards_equal_then_exactly_the_damaged_cell(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    ds = DashboardSettings(updates_topic=worker.updates_topic)
    # A worker started at the end of the topics knows a product's category only once the
    # product changes (its category table is filled from the products topic): tell it all.
    db.execute("UPDATE products SET category = category")
    # Windows that began after the worker's start are compared: write into the next minute.
    minute = (int(worker.since) // 60 + 1) * 60
    time.sleep(max(0.0, minute + 1 - time.time()))
    category = f"test-{uuid.uuid4().hex[:8]}"
    product = _insert(
        db,
        "INSERT INTO products (sku, name, category, brand, price, stock) "
        "VALUES (%s, 'Verify lamp', %s, 'Acme', 12.50, 9) RETURNING id",
        [f"test-{uuid.uuid4().hex[:12]}", category],
    )
    customers = [r[0] for r in db.execute("SELECT id FROM customers ORDER BY id LIMIT 3")]
    kept = [_order(db, c, [(product, 2, "12.50")]) for c in customers]
    cancelled = _order(db, customers[0], [(product, 1, "12.50")])
    deleted = _order(db, customers[1], [(product, 3, "12.50")])
    db.execute("UPDATE orders SET status = 'cancelled' WHERE id = %s", [cancelled])
    db.execute("UPDATE orders SET status = 'paid' WHERE id = %s", [kept[0]])
    db.execute("DELETE FROM orders WHERE id = %s", [deleted])
    for i, kind in enumerate(["page_view", "page_view", "add_to_cart", "click"]):
        db.execute(
            "INSERT INTO interactions (customer_id, product_id, kind) VALUES (%s, %s, %s)",
            [customers[i % len(customers)], product, kind],
        )
    window = int(db.execute("SELECT created_at FROM orders WHERE id = %s", [kept[0]]).fetchone()[0]
                 .timestamp()) // 60 * 60  # fmt: skip
    ours = ("top_1m", logic.PRODUCT_REVENUE, window, str(product))
    by_category = ("top_1m", logic.CATEGORY_REVENUE, window, category)

    def equal(report: Report) -> bool:
        return report.ok and all(_cell(report, k).status == "equal" for k in (ours, by_category))

    report = _settled(stack, ds, worker.since, equal)
    assert report.ok, [c.to_json() for c in report.differences]
    assert _cell(report, ours).source == 75.0  # three orders of two lamps; the others gone
    assert _cell(report, by_category).dashboard == 75.0
    for table, metric in (("counts_1m", "orders"), ("counts_15m", "revenue")):
        _cell(report, (table, metric, window, None))  # compared (equal, or others moving it)
    assert report.counts()["equal"] > 0

    # Damage one published cell: the partition that holds our product's revenue in that
    # window now says 10.00 more, as a worker with a wrong sum would.
    reader = UpdatesReader(stack.kafka, worker.updates_topic, ds.retention_s)
    try:
        partitions = reader.catch_up().windows[ours[0], ours[1], window]
    finally:
        reader.close()
    partition, value = next((p, v) for p, v in partitions.items() if str(product) in v)
    damaged = {**value, str(product): value[str(product)] + 10.0}
    key, raw = encode(
        WindowUpdate(table=ours[0], metric=ours[1], partition=partition, start=window,
                     value=damaged)
    )  # fmt: skip
    # Kafka's default partitioner (murmur2, as the worker's client uses): the record lands
    # beside the worker's records of that key, after them.
    producer = Producer({**stack.kafka.client_config(), "partitioner": "murmur2_random"})
    producer.produce(worker.updates_topic, key=key, value=raw)
    producer.flush(10)

    def damage_found(report: Report) -> bool:
        return any(c.key == ours for c in report.differences)

    report = _settled(stack, ds, worker.since, damage_found)
    assert [(c.key, c.status, c.source, c.dashboard) for c in report.differences] == [
        (ours, "differs", 75.0, 85.0)
    ]
    counts = reconcile_dashboards(stack, worker.updates_topic, since=worker.since, settle_s=3.0)
    assert counts["differs"] == 1 and counts["missing"] == counts["extra"] == 0
    assert counts["equal"] > 0
