"""Dashboards on the real Kafka: aggregates, retraction, lateness, live stream, and recovery.

Each test drives its own topics (Debezium-shaped records written straight to Kafka) through a
standalone dashboards worker and reads the result from the API, as a user would.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from headwater.settings import Settings
from streams.dashboards import synthetic
from streams.dashboards.harness import ApiServer, Sandbox, panel, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def sandbox(stack: Settings, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(kafka=stack.kafka, work_dir=tmp_path, lateness_s=60.0)
    box.create_topics()
    yield box
    box.stop()
    box.delete_topics()


def _value(snapshot: dict, panel_id: str) -> float | None:
    return panel(snapshot, panel_id).get("value")


def test_orders_aggregate_retract_drop_late_and_survive_a_restart(sandbox: Sandbox) -> None:
    now = datetime.now(UTC).replace(second=20, microsecond=0)
    lsn = itertools.count(1000)
    producer = sandbox.producer()

    def send(table: str, record: synthetic.Record) -> None:
        producer.produce(sandbox.topic(table), key=record[0], value=record[1])

    send("products", synthetic.product(1, lsn=next(lsn), name="Teapot", category="kitchen", at=now))
    producer.flush()
    worker = sandbox.start_worker()
    with ApiServer(sandbox.kafka_settings, sandbox.dashboard_settings) as api:
        wait_for(api, "sales", lambda s: s["events"] >= 0)
        for order_id in range(1, 6):
            send("orders", synthetic.order(order_id, lsn=next(lsn), at=now, total="25.00"))
            send(
                "order_items",
                synthetic.order_line(
                    order_id,
                    order_id=order_id,
                    product_id=1,
                    lsn=next(lsn),
                    at=now,
                    quantity=1,
                    unit_price="25.00",
                ),
            )
        for i in range(1, 31):
            send(
                "interactions",
                synthetic.interaction(
                    i, lsn=next(lsn), at=now, customer_id=1 + i % 4, product_id=1
                ),
            )
        producer.flush()
        # Orders and their lines are separate topics: wait until both have been counted.
        sales = wait_for(
            api,
            "sales",
            lambda s: (
                _value(s, "orders_this_minute") == 5.0 and _value(s, "revenue_this_minute") == 125.0
            ),
        )
        assert _value(sales, "revenue_last_15m") == 125.0
        assert _value(sales, "avg_order_value_15m") == 25.0
        engagement = wait_for(
            api,
            "engagement",
            lambda s: (
                (_value(s, "active_users_5m"), _value(s, "page_views_this_minute")) == (4.0, 30.0)
            ),
        )
        assert _value(engagement, "page_views_this_minute") == 30.0

        # Cancel one order (and update it again with a stale LSN, which must change nothing),
        # then send an order far older than the allowed lateness.
        send("orders", synthetic.order(2, lsn=next(lsn), at=now, total="25.00", status="cancelled"))
        send("orders", synthetic.order(2, lsn=1, at=now, total="25.00"))
        send("orders", synthetic.order(99, lsn=next(lsn), at=now - timedelta(minutes=30)))
        producer.flush()
        sales = wait_for(api, "sales", lambda s: _value(s, "dropped_late") == 1)
        sales = wait_for(api, "sales", lambda s: _value(s, "orders_this_minute") == 4.0)
        assert _value(sales, "revenue_this_minute") == 100.0
        top = panel(sales, "top_products_revenue")["items"]
        assert top == [{"key": "1", "label": "Teapot", "value": 100.0}]
        before = {p["id"]: p.get("value") for p in sales["panels"]}

        # Kill the worker and lose its local state: the new one must rebuild the tables from
        # the changelog topics, so one more order adds to the old totals instead of restarting.
        sandbox.kill_worker(worker)
        import shutil

        shutil.rmtree(sandbox.dashboard_settings.data_dir or "", ignore_errors=True)
        sandbox.start_worker("worker-restarted")
        send("orders", synthetic.order(6, lsn=next(lsn), at=now, total="25.00"))
        producer.flush()
        after = wait_for(
            api,
            "sales",
            lambda s: (
                (_value(s, "orders_this_minute"), _value(s, "revenue_this_minute")) == (5.0, 125.0)
            ),
            timeout=120,
        )
        assert _value(after, "revenue_this_minute") == 125.0
        assert _value(after, "dropped_late") == before["dropped_late"]
        assert after["panels"] and panel(after, "revenue_by_category")["items"][0]["value"] == 100.0


def test_live_stream_sends_a_snapshot_then_updates(sandbox: Sandbox) -> None:
    now = datetime.now(UTC)
    producer = sandbox.producer()
    sandbox.start_worker()
    with ApiServer(sandbox.kafka_settings, sandbox.dashboard_settings) as api:
        stream = api.stream("sales", timeout=60)
        first = next(stream)
        assert first["name"] == "sales" and "panels" in first
        record = synthetic.order(1, lsn=10, at=now, total="42.00")
        producer.produce(sandbox.topic("orders"), key=record[0], value=record[1])
        producer.flush()
        for snapshot in stream:
            if _value(snapshot, "revenue_this_minute") == 42.0:
                assert snapshot["last_event_ms"] == 10
                break


def test_records_read_again_after_a_kill_are_not_counted_twice(sandbox: Sandbox) -> None:
    """A worker that never commits is killed: its successor reads every record again from the
    start of the topics, and must skip the ones its tables (rebuilt from the changelog) hold."""
    now = datetime.now(UTC).replace(second=20, microsecond=0)
    lsn = itertools.count(1)
    producer = sandbox.producer()

    def send(table: str, record: synthetic.Record) -> None:
        producer.produce(sandbox.topic(table), key=record[0], value=record[1])

    never_commits = {"HW_STREAMS_COMMIT_INTERVAL_S": "86400"}
    worker = sandbox.start_worker("never-commits", env=never_commits)
    with ApiServer(sandbox.kafka_settings, sandbox.dashboard_settings) as api:
        for order_id in (1, 2):
            send("orders", synthetic.order(order_id, lsn=next(lsn), at=now, total="10.00"))
        for i in range(1, 41):
            send("interactions", synthetic.interaction(i, lsn=next(lsn), at=now, customer_id=i))
            if i == 20:  # two bad records amid the good ones: dead letters, not a crash
                producer.produce(sandbox.topic("interactions"), key=b'{"id":900}', value=b"{no")
                key, value = synthetic.interaction(901, lsn=next(lsn), at=now)
                bad = json.loads(value)
                del bad["customer_id"]
                producer.produce(sandbox.topic("interactions"), key=key, value=json.dumps(bad))
        producer.flush()
        wait_for(
            api,
            "sales",
            lambda s: (_value(s, "orders_this_minute"), s["events"]) == (2.0, 42),
        )
        time.sleep(1.0)  # the tables' changelog writes are sent just before the updates
        sandbox.kill_worker(worker)

        sandbox.start_worker("successor")
        send("interactions", synthetic.interaction(41, lsn=next(lsn), at=now, customer_id=41))
        producer.flush()
        engagement = wait_for(
            api, "engagement", lambda s: _value(s, "page_views_this_minute") == 41.0, timeout=120
        )
        time.sleep(3.0)  # had the old records been counted again, they would show by now
        engagement = api.dashboard("engagement")
        sales = api.dashboard("sales")
    assert _value(engagement, "page_views_this_minute") == 41.0
    assert _value(sales, "orders_this_minute") == 2.0
    assert _value(sales, "revenue_this_minute") == 20.0
    assert sales["events"] == 43
    # Two, not four: the successor skipped the bad records it read again, too.
    letters = _dead_letters(sandbox, sandbox.topic("interactions"), expected=2)
    errors = sorted(letter["error"] for letter in letters)
    assert "not JSON" in errors[1] and "customer_id" in errors[0], errors
    assert {letter["consumer"] for letter in letters} == {"dashboards:interactions"}
    assert sorted(letter["stage"] for letter in letters) == ["decode", "handle"]


def test_facts_sent_again_or_read_again_by_a_new_snapshot_count_once(sandbox: Sandbox) -> None:
    """Debezium sends the changes after its last flushed offset again when Connect crashes
    (new offsets, the same streaming positions), and a new snapshot (after a lost replication
    slot) reads every row again: each interaction still counts once, also for a worker that
    took over from the changelog."""
    now = datetime.now(UTC).replace(second=20, microsecond=0)
    producer = sandbox.producer()

    def streamed(i: int) -> synthetic.Record:
        # Transactions that commit out of LSN order, as concurrent sessions do.
        return synthetic.interaction(
            i, lsn=1000 * i - 7 * (i % 3), last_commit_lsn=1000 * i - 500, at=now, customer_id=i
        )

    def snapshot_read(i: int) -> synthetic.Record:
        return synthetic.interaction(i, lsn=10**9, op="r", at=now, customer_id=i)

    def send(records: list[synthetic.Record]) -> None:
        for key, value in records:
            producer.produce(sandbox.topic("interactions"), key=key, value=value)
        producer.flush()

    def page_views_settle_at(api: ApiServer, expected: float) -> None:
        wait_for(api, "engagement", lambda s: _value(s, "page_views_this_minute") == expected)
        time.sleep(3.0)  # a copy counted would show by now
        assert _value(api.dashboard("engagement"), "page_views_this_minute") == expected

    worker = sandbox.start_worker("first")
    with ApiServer(sandbox.kafka_settings, sandbox.dashboard_settings) as api:
        send([streamed(i) for i in range(1, 21)])
        page_views_settle_at(api, 20.0)
        # Connect crashed after 10: 11-20 come again, then the new ones.
        send([streamed(i) for i in range(11, 26)])
        page_views_settle_at(api, 25.0)
        # The slot was lost: a new snapshot reads 1-30, of which 26-30 were never streamed.
        send([snapshot_read(i) for i in range(1, 31)])
        page_views_settle_at(api, 30.0)
        time.sleep(1.0)  # the tables' changelog writes are sent just before the updates
        sandbox.kill_worker(worker)
        sandbox.start_worker("successor")
        send([snapshot_read(i) for i in range(1, 32)])
        page_views_settle_at(api, 31.0)


def _dead_letters(sandbox: Sandbox, topic: str, expected: int) -> list[dict]:
    consumer = Consumer(
        {
            **sandbox.kafka.client_config(),
            "group.id": f"{sandbox.prefix}-dlq-check",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([sandbox.kafka.dead_letter_topic(topic)])
    letters: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            letters.append(json.loads(message.value()))
            if len(letters) >= expected:  # and then a moment longer, for any extra one
                deadline = min(deadline, time.monotonic() + 3)
    consumer.close()
    assert len(letters) == expected, letters
    return letters
