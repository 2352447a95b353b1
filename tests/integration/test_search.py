"""Search indexing on the real stack: the shop database, Debezium, Kafka, a worker, Elasticsearch.

Each module run starts its own worker (own consumer group, own index prefix, own web port)
reading from the end of the change topics (a start the worker commits before it joins, so a
kill before its first commit skips nothing), then builds its indexes from a source snapshot with
`reindex` (newer changes the worker writes win over the snapshot), so start-up does not depend
on how much history the topics hold. Every check is `verify`: the whole source table equals
the whole index, polled up to a bounded wait.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from connectors.sources import resolve
from headwater.settings import Settings
from indexers.catalog import client, current_index
from indexers.declared import DeclaredIndex, declared_indexes
from indexers.reindex import reindex as run_reindex
from indexers.search import search as run_search
from indexers.verify import Report
from indexers.verify import verify as run_verify
from streams.process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT_S = 60.0


def declared(settings: Settings, prefix: str) -> dict[str, DeclaredIndex]:
    pipelines, bindings = resolve(settings)
    return declared_indexes(pipelines, bindings, prefix)


def reindex(settings: Settings, es: Any, index: DeclaredIndex) -> Any:
    return run_reindex(settings.elasticsearch, index.dsn, es, index.spec, index.shaper)


def verify(settings: Settings, es: Any, name: str, prefix: str) -> Report:
    index = declared(settings, prefix)[name]
    return run_verify(index.dsn, es, index.spec, index.shaper)


def search(settings: Settings, es: Any, prefix: str, name: str, q: str) -> dict[str, Any]:
    index = declared(settings, prefix)[name]
    return run_search(es, index.alias, index.shaper.declaration, q)


class Worker(WorkerProcess):
    def __init__(self, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"t-{suffix}-"
        port = 6200 + int(suffix[:4], 16) % 500
        env = {
            **os.environ,
            "HW_STREAMS_APP_ID": f"hw-test-search-{suffix}",
            "HW_INDEXES_PREFIX": self.prefix,
            "HW_STREAMS_WEB_PORT": str(port),
            "HW_STREAMS_DATA_DIR": str(tmp / "streams"),
            "HW_STREAMS_AUTO_OFFSET_RESET": "latest",
        }
        super().__init__(env, port, tmp / "worker.log")


@pytest.fixture(scope="module")
def worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    running = Worker(tmp_path_factory.mktemp("search-worker"))
    running.start()
    time.sleep(2)  # let the new consumer group settle its positions at the end of the topics
    es = client(stack.elasticsearch, timeout_s=120)
    for index in declared(stack, running.prefix).values():
        reindex(stack, es, index)
    yield running
    running.stop()
    # A clean stop closes its clients: aiohttp logs an ERROR for every session left open.
    assert "Unclosed client session" not in running.log.read_text()
    es = client(stack.elasticsearch)
    es.indices.delete(index=f"{running.prefix}*", allow_no_indices=True)
    for name in ("products", "reviews"):
        es.options(ignore_status=404).indices.delete_index_template(name=f"{running.prefix}{name}")


@pytest.fixture
def db(stack: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
        yield conn


def converged(settings: Settings, worker: Worker, *tables: str) -> list[Report]:
    es = client(settings.elasticsearch)
    deadline = time.monotonic() + WAIT_S
    while True:
        reports = [
            verify(settings, es, t, worker.prefix) for t in tables or ("products", "reviews")
        ]
        if all(r.ok for r in reports):
            return reports
        if time.monotonic() > deadline:
            details = [(r.table, r.source_count, r.index_count, r.mismatches[:5]) for r in reports]
            raise AssertionError(f"index != source after {WAIT_S}s: {details}")
        time.sleep(0.5)


def new_product(db: psycopg.Connection[Any], **overrides: Any) -> int:
    values = {
        "sku": f"test-{uuid.uuid4().hex[:12]}",
        "name": "Test lantern",
        "description": "A lantern for the integration tests",
        "category": "outdoor",
        "brand": "Acme",
        "price": "19.99",
        "stock": 5,
        **overrides,
    }
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = db.execute(
        f"INSERT INTO products ({columns}) VALUES ({marks}) RETURNING id", list(values.values())
    ).fetchone()
    assert row is not None
    return int(row[0])


def new_review(
    db: psycopg.Connection[Any], product: int, customer: int, rating: int, body: str
) -> int:
    row = db.execute(
        "INSERT INTO reviews (product_id, customer_id, rating, body) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        [product, customer, rating, body],
    ).fetchone()
    assert row is not None
    return int(row[0])


def any_customer(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT id FROM customers ORDER BY id LIMIT 1").fetchone()
    if row is None:
        row = db.execute(
            "INSERT INTO customers (email, full_name, country) VALUES (%s, 'T', 'NL') RETURNING id",
            [f"{uuid.uuid4().hex}@example.com"],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_snapshot_then_stream_converges(stack: Settings, worker: Worker) -> None:
    converged(stack, worker)


def test_insert_update_delete(stack: Settings, worker: Worker, db: psycopg.Connection[Any]) -> None:
    product = new_product(db, name="Glacier lantern")
    customer = any_customer(db)
    review = new_review(db, product, customer, 2, "too dim")
    converged(stack, worker)
    es = client(stack.elasticsearch)
    doc = es.get(index=f"{worker.prefix}products", id=str(product)).body["_source"]
    assert (doc["review_count"], doc["rating_avg"]) == (1, 2.0)

    db.execute("UPDATE products SET price = 24.50, stock = 0 WHERE id = %s", [product])
    db.execute("UPDATE reviews SET rating = 5, body = 'bright after all' WHERE id = %s", [review])
    converged(stack, worker)
    hits = search(stack, es, worker.prefix, "products", "glacier")["hits"]
    assert [h["source"]["rating_avg"] for h in hits if h["id"] == str(product)] == [5.0]

    db.execute("DELETE FROM reviews WHERE id = %s", [review])
    converged(stack, worker)
    db.execute("DELETE FROM products WHERE id = %s", [product])
    converged(stack, worker)
    # Every record written was timed from Kafka to its lane and to its acknowledgement.
    stages = httpx.get(f"http://127.0.0.1:{worker.port}/search/stats/", timeout=2).json()
    fetched, acked = (sum(stages["stages_ms"][s]["counts"]) for s in ("fetched", "acked"))
    assert fetched == acked >= 6


def test_burst_of_updates_to_one_row(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    product = new_product(db)
    for stock in range(300):
        db.execute("UPDATE products SET stock = %s WHERE id = %s", [stock, product])
    converged(stack, worker, "products")


def test_deleted_and_reinserted_with_the_same_key(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    product = new_product(db, name="Phoenix kettle")
    db.execute("DELETE FROM products WHERE id = %s", [product])
    new_product(db, id=product, name="Phoenix kettle, reborn")
    converged(stack, worker, "products")
    es = client(stack.elasticsearch)
    doc = es.get(index=f"{worker.prefix}products", id=str(product)).body["_source"]
    assert doc["name"] == "Phoenix kettle, reborn" and doc["hw_live"] is True


def test_malformed_message_does_not_stop_the_worker(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    before = worker.stats()["malformed"]
    producer = Producer(stack.kafka.client_config())
    topic = stack.kafka.cdc_topic("products")
    producer.produce(topic, key=b'{"id": -1}', value=b"{not json")
    producer.produce(topic, key=b'{"id": -2}', value=json.dumps({"__op": "u"}).encode())
    producer.flush(10)
    new_product(db, name="After the garbage")
    converged(stack, worker, "products")
    assert worker.proc is not None and worker.proc.poll() is None
    assert worker.stats()["malformed"] >= before + 2


def test_killed_mid_burst_and_restarted(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    products = [new_product(db) for _ in range(20)]
    for round_ in range(15):
        for product in products:
            db.execute("UPDATE products SET stock = %s WHERE id = %s", [round_, product])
        if round_ == 5:
            worker.stop(signal.SIGKILL)
    for product in products[::2]:
        db.execute("DELETE FROM products WHERE id = %s", [product])
    worker.start()
    converged(stack, worker)


def test_reindex_swaps_the_alias_and_keeps_answering(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    es = client(stack.elasticsearch)
    index = declared(stack, worker.prefix)["products"]
    before = current_index(es, index.spec)
    assert before is not None
    new_product(db, name="Reindexed compass")
    # A live document whose row is gone (as a lost delete would leave): reindex must drop it.
    ghost = {"id": 987654321, "name": "Ghost lamp", "hw_live": True, "hw_lsn": 1}
    es.index(index=before, id="987654321", document=ghost, refresh=True)
    result = reindex(stack, es, index)
    marker = es.options(ignore_status=404).get(index=result.new_index, id="987654321").body
    assert marker.get("found") is False or marker["_source"]["hw_live"] is False
    assert result.old_index == before and current_index(es, index.spec) == result.new_index
    assert search(stack, es, worker.prefix, "products", "")["total"] > 0
    new_product(db, name="Written after the swap")
    converged(stack, worker, "products")


def test_reindex_sees_a_transaction_that_wrote_before_its_snapshot_and_committed_after(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    """A change written before the snapshot's WAL position but committed after it is not in
    the snapshot and has the lower LSN: reindex must wait for its transaction, or the snapshot
    wins over it for good (a rename lost, a new review missing, a deleted one still counted)."""
    product = new_product(db, name="Lantern before the reindex")
    customer = any_customer(db)
    gone = new_review(db, product, customer, 1, "to be deleted")
    converged(stack, worker)
    es = client(stack.elasticsearch, timeout_s=120)
    index = declared(stack, worker.prefix)["products"]
    done: list[Any] = []
    with psycopg.connect(stack.postgres.dsn()) as writer:  # one transaction, left open
        writer.execute("UPDATE products SET name = 'Renamed in flight' WHERE id = %s", [product])
        new_review(writer, product, customer, 5, "written in flight")
        writer.execute("DELETE FROM reviews WHERE id = %s", [gone])
        building = threading.Thread(target=lambda: done.append(reindex(stack, es, index)))
        building.start()
        time.sleep(2)
        assert building.is_alive(), "the snapshot did not wait for the open transaction"
        writer.commit()
    building.join(120)
    assert done, "reindex did not finish"
    converged(stack, worker)
    doc = es.get(index=index.alias, id=str(product)).body["_source"]
    assert (doc["name"], doc["review_count"], doc["rating_avg"]) == ("Renamed in flight", 1, 5.0)


def test_verify_repair_rewrites_exactly_the_documents_that_differ(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    product = new_product(db, name="Lantern to be damaged")
    customer = any_customer(db)
    reviews = [new_review(db, product, customer, 4, f"review {n}") for n in range(3)]
    converged(stack, worker)
    es = client(stack.elasticsearch)
    alias = f"{worker.prefix}reviews"
    # Damage the index behind the pipeline's back, at versions no newer than the documents had:
    # a stale review, a lost one, a ghost whose row never existed, and a stale product name.
    kept = es.get(index=alias, id=str(reviews[0])).body
    damaged = {**kept["_source"], "text": "not what the row says"}
    es.index(index=alias, id=str(reviews[0]), document=damaged,
             version=kept["_version"], version_type="external_gte")  # fmt: skip
    es.delete(index=alias, id=str(reviews[1]))
    ghost = {"id": 987654322, "product_id": product, "hw_live": True, "hw_lsn": 1}
    es.index(index=alias, id="987654322", document=ghost, version=1, version_type="external")
    products = f"{worker.prefix}products"
    doc = es.get(index=products, id=str(product)).body
    es.index(index=products, id=str(product), document={**doc["_source"], "name": "Wrong"},
             if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])  # fmt: skip
    untouched = es.get(index=alias, id=str(reviews[2])).body["_seq_no"]

    env = {**os.environ, "HW_INDEXES_PREFIX": worker.prefix}
    run = [sys.executable, "-m", "headwater", "verify", "search", "--settle", "1", "--json"]
    found = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert found.returncode == 1, found.stderr
    kinds = {(r["index"], m["id"], m["kind"]) for r in json.loads(found.stdout)
             for m in r["mismatches"]}  # fmt: skip
    assert kinds == {
        (alias, str(reviews[0]), "stale"),
        (alias, str(reviews[1]), "missing"),
        (alias, "987654322", "extra"),
        (products, str(product), "stale"),
    }
    fixed = subprocess.run([*run, "--repair"], capture_output=True, text=True, env=env, timeout=300)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert {r["index"]: r["repaired"] for r in json.loads(fixed.stdout)} == {alias: 3, products: 1}
    assert es.get(index=alias, id=str(reviews[2])).body["_seq_no"] == untouched
    assert (
        es.get(index=products, id=str(product)).body["_source"]["name"] == "Lantern to be damaged"
    )


def test_verify_under_writes_reports_nothing_in_flight_as_stale(
    stack: Settings, worker: Worker, db: psycopg.Connection[Any]
) -> None:
    hot = [new_product(db, name=f"Hot lantern {n}") for n in range(3)]
    converged(stack, worker, "products")
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute("UPDATE products SET stock = %s WHERE id = %s", [n, hot[n % 3]])
                time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(1)
        es = client(stack.elasticsearch)
        index = declared(stack, worker.prefix)["products"]
        report = run_verify(index.dsn, es, index.spec, index.shaper, settle_s=3)
    finally:
        stop.set()
        writer.join()
    assert report.mismatches == [], report.mismatches[:5]
    converged(stack, worker, "products")
