"""Freshness benchmark: how long a product change takes from its commit to being searchable,
under the load an application puts on its catalogue, measured end to end.

Load. `sessions` threads, each with its own PostgreSQL connection (synchronous commit on), commit
small transactions of `txn_rows` changes, paced so that together they commit `rate` changes/s, on
bench-owned products and reviews: names, prices and stock, review inserts and deletes, product
inserts and deletes (`freshness.MIX`), a `hot_share` of them on `hot_rows` popular products.
Sessions changing the same hot row wait on its row lock, as an application's do.

Ordering. Every statement takes its number from a bench sequence *inside* the statement
(`nextval` in SET, RETURNING `currval`). PostgreSQL evaluates SET again after waiting for a row
lock, so on each row the numbers grow in commit order and a document showing number s shows
every change of its row committed before s (`freshness.row_seq`).

Measurement. A poller searches the products alias (a real `_search`: visible to search, not a
realtime get) every POLL_S for the rows with pending changes, and stamps a change seen the first
time its document shows it or anything later of its row; latency = seen - committed on this
machine's monotonic clock (the poll interval bounds the error). A plain Kafka consumer on the
products and reviews change topics stamps each bench record's arrival against the commit time
Debezium writes into it (`__source_ts_ms`): Debezium's and Kafka's share. The same run measures
the machine's raw limits: Elasticsearch bulk indexing directly, and a bare aiokafka consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from elasticsearch import Elasticsearch
from elasticsearch import TransportError as ESTransportError
from elasticsearch.helpers import bulk
from psycopg import sql

from connectors.sources import resolve
from headwater.console import console, print_table
from headwater.settings import PROJECT_ROOT, Settings
from headwater.stack.manager import Stack
from indexers.catalog import client
from indexers.declared import DeclaredIndex, declared_indexes
from streams.latency import added, since, summary
from streams.profile import CpuMeter, Profiler, by_function, by_stage
from streams.search.freshness import (
    MIX,
    REVIEWS,
    ROW_KINDS,
    Change,
    Load,
    Pool,
    is_seen,
    latency_summary,
    name_of,
    name_prefix,
    next_due,
    price_of,
    product_row,
    ramp_rates,
    review_prefix,
    row_value,
    stock_of,
    summarise_step,
    verdict,
)
from streams.settings import StreamsSettings

POLL_S = 0.05  # between the starts of two polls
POLL_IDS = 1000  # documents per search
DRAIN_S = 30.0  # how long after a step's last commit its changes may still become searchable
RAMP_STEP_S = 15.0
MIN_LAG_S = 0.01  # a session behind schedule catches up at most this much (or two intervals)
SEARCHABLE_S = 180.0  # for the bench rows to be indexed before measuring
PROGRESS_S = 5.0

Progress = Callable[[str], None]


def es_bulk_docs_per_s(es: Elasticsearch, products: DeclaredIndex, docs: int = 20_000) -> float:
    """Bulk-index product-shaped documents straight into a scratch index like `products`."""
    index = f"bench-raw-{uuid.uuid4().hex[:8]}"
    template = products.spec.template()["template"]
    es.indices.create(index=index, settings=template["settings"], mappings=template["mappings"])
    try:
        body = {
            "name": "Everyday bench speaker",
            "description": "A small speaker used to measure bulk indexing " * 3,
            "category": "electronics",
            "brand": "Acme",
            "price": 19.99,
            "stock": 5,
            "hw_live": True,
            "hw_lsn": 1,
            "review_count": 0,
        }
        actions = (
            {"_index": index, "_id": str(i), "_source": {**body, "id": i}} for i in range(docs)
        )
        start = time.monotonic()
        bulk(es, actions, chunk_size=1000, refresh="wait_for")
        return docs / (time.monotonic() - start)
    finally:
        es.indices.delete(index=index)


def kafka_consume_msgs_per_s(settings: Settings, messages: int = 100_000) -> float:
    """A bare aiokafka consumer (the workers' client) on a scratch topic of CDC-sized records."""
    from aiokafka import AIOKafkaConsumer
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka = settings.kafka
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
    admin = AdminClient({**kafka.client_config()})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    value = json.dumps({"id": 1, "name": "x" * 200, "__op": "u", "__lsn": 1, "__table": "products"})
    producer = Producer({**kafka.client_config(), "linger.ms": 20})
    for i in range(messages):
        while True:
            try:
                producer.produce(topic, key=json.dumps({"id": i}).encode(), value=value.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)

    async def consume() -> float:
        consumer = AIOKafkaConsumer(
            topic,
            **kafka.aiokafka_options(),
            group_id=f"{topic}-g",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            count, start = 0, None
            while count < messages:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if start is None and batch:
                    start = time.monotonic()
                count += sum(len(records) for records in batch.values())
            assert start is not None
            return count / (time.monotonic() - start)
        finally:
            await consumer.stop()

    try:
        return asyncio.run(consume())
    finally:
        admin.delete_topics([topic])[topic].result(30)


MAX_WORKERS = 16  # how many worker ports the bench looks at for running workers


@dataclass
class _Workers:
    """The stream workers the bench measures: their web ports and pids."""

    ports: list[int]
    pids: list[int]
    proc: subprocess.Popen[bytes] | None = None  # the one the bench started, if it did
    log: Path = field(default_factory=Path)

    @property
    def started_here(self) -> bool:
        return self.proc is not None


def _ready_pid(streams: StreamsSettings, port: int) -> int | None:
    """The pid of the worker ready on `port`, or None."""
    try:
        answer = httpx.get(f"http://{streams.web_host}:{port}/ready/", timeout=1)
    except httpx.HTTPError:
        return None
    return int(answer.json()["pid"]) if answer.status_code == 200 else None


def _running_workers(streams: StreamsSettings) -> _Workers:
    """Workers 0, 1, ... as far as they answer ready (`headwater worker --workers N`)."""
    ports, pids = [], []
    for index in range(MAX_WORKERS):
        port = streams.worker_port(index)
        if (pid := _ready_pid(streams, port)) is None:
            break
        ports.append(port)
        pids.append(pid)
    return _Workers(ports, pids)


def _ensure_worker(settings: Settings, streams: StreamsSettings) -> _Workers:
    running = _running_workers(streams)
    if running.pids:
        return running
    log = settings.stack.data_dir / "logs" / "bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "0"],
            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    port = streams.worker_port(0)
    deadline = time.monotonic() + 120
    while _ready_pid(streams, port) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the stream worker did not become ready; see {log}")
        time.sleep(0.5)
    return _Workers([port], [proc.pid], proc, log)


# Records a worker may still have to read and be caught up (those of a commit interval).
CAUGHT_UP_RECORDS = 100


def _wait_caught_up(
    streams: StreamsSettings, workers: _Workers, progress: Progress, timeout_s: float = 900.0
) -> float:
    """Wait until every worker has worked off what was waiting in its topics (its readiness
    says its lag is "ok" and it is at most `CAUGHT_UP_RECORDS` behind, twice in a row): a
    worker still reading a backlog would make every figure of the run one of that backlog.
    Seconds waited."""
    start = last_said = time.monotonic()
    in_a_row = 0
    while in_a_row < 2:
        lags = []
        for port in workers.ports:
            try:
                body = httpx.get(f"http://{streams.web_host}:{port}/ready/", timeout=2).json()
                lags.append(body["lag"])
            except (httpx.HTTPError, ValueError, KeyError):
                lags.append({"state": "unknown", "behind": 0, "lag_ms": 0.0})
        # "ok" alone is not enough: a worker reading a backlog fast has a young oldest record.
        caught_up = all(lag["state"] == "ok" for lag in lags) and (
            sum(int(lag["behind"]) for lag in lags) <= CAUGHT_UP_RECORDS
        )
        in_a_row = in_a_row + 1 if caught_up else 0
        waited = time.monotonic() - start
        if waited > timeout_s:
            raise RuntimeError(
                f"the stream workers did not catch up with their topics in {timeout_s:g} s"
            )
        if in_a_row == 0 and time.monotonic() - last_said >= 5:
            behind = sum(int(lag["behind"]) for lag in lags)
            oldest = max(float(lag["lag_ms"]) for lag in lags) / 1000
            progress(
                f"waiting for the stream workers to catch up: {behind:,} records behind, "
                f"oldest {oldest:.0f} s ({waited:.0f} s so far)"
            )
            last_said = time.monotonic()
        time.sleep(1)
    return round(time.monotonic() - start, 1)


class _Statements:
    """The writer's SQL, each change one statement taking its number from the bench sequence."""

    def __init__(self, sequence: str) -> None:
        def q(text: str) -> str:
            return sql.SQL(text).format(seq=sql.Literal(sequence)).as_string()

        touched = ", updated_at = now() WHERE id = %s RETURNING currval({seq}), "
        self.name = q("UPDATE products SET name = %s || nextval({seq})" + touched + "name")
        self.price = q("UPDATE products SET price = 1 + nextval({seq}) * 0.01" + touched + "price")
        self.stock = q("UPDATE products SET stock = nextval({seq})" + touched + "stock")
        self.review_insert = q(
            "INSERT INTO reviews (product_id, customer_id, rating, body) "
            "VALUES (%s, %s, %s, %s || nextval({seq})) RETURNING currval({seq}), id"
        )
        self.review_delete = q("DELETE FROM reviews WHERE id = %s RETURNING nextval({seq})")
        # nextval in a one-row subquery: evaluated once, so every column gets the same number.
        self.product_insert = q(
            "INSERT INTO products (sku, name, description, category, brand, price, stock) "
            "SELECT %s, %s || n.s, %s, %s, %s, 1 + n.s * 0.01, n.s "
            "FROM (SELECT nextval({seq}) AS s) AS n RETURNING stock, id, name, price"
        )
        self.product_delete = q("DELETE FROM products WHERE id = %s RETURNING nextval({seq})")


class _EncodingMismatch(RuntimeError):
    """PostgreSQL wrote a value other than the encoding the poller decodes: a bench bug."""


@dataclass
class _StepLog:
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    transactions_s: list[float] = field(default_factory=list)  # how long each one took


class _Bench:
    """One run: its rows, its writer sessions, its poller and its Debezium listener."""

    def __init__(
        self, settings: Settings, load: Load, es: Elasticsearch, products: DeclaredIndex,
        progress: Progress,
    ) -> None:  # fmt: skip
        self.settings, self.load, self.es, self.products = settings, load, es, products
        self.progress = progress
        self.run = uuid.uuid4().hex[:6]
        self.sequence = f"bench_{self.run}_seq"
        self.sql = _Statements(self.sequence)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = Pool([], [], {})
        self.pending: dict[int, list[Change]] = {}
        self.log = _StepLog()
        self.debezium_ms: list[float] = []
        self.searches: list[tuple[int, float]] = []  # (documents asked for, seconds), per search
        self.customer: int | None = None
        self.skus = count(load.rows + 1)
        self.conns: list[psycopg.Connection[Any]] = []
        self.threads: list[threading.Thread] = []
        self.sessions: list[threading.Thread] = []
        self.failure: Exception | None = None  # what stopped a session, other than SQL
        self.consumer: Consumer | None = None

    # --- the bench rows ---

    def setup(self) -> None:
        load, run = self.load, self.run
        rng = random.Random(self.run)
        self.progress(
            f"run {run}: creating {load.rows} bench products and {load.rows // 2} reviews ..."
        )
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(self.sequence)))
            self.customer = conn.execute(
                "INSERT INTO customers (email, full_name, country) VALUES (%s, %s, %s) "
                "RETURNING id",
                [f"bench-{run}@bench.invalid", "Bench Reviewer", "DE"],
            ).fetchone()[0]  # type: ignore[index]
            rows = [product_row(run, n) for n in range(1, load.rows + 1)]
            found = conn.execute(
                "INSERT INTO products (sku, name, description, category, brand, price, stock) "
                "SELECT sku, %s, d, c, b, %s, %s "
                "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS r(sku, d, c, b) "
                "RETURNING id",
                [
                    name_of(run, 0), price_of(0), stock_of(0),
                    [r["sku"] for r in rows], [r["description"] for r in rows],
                    [r["category"] for r in rows], [r["brand"] for r in rows],
                ],
            ).fetchall()  # fmt: skip
            ids = sorted(int(r[0]) for r in found)
            targets = [rng.choice(ids) for _ in range(load.rows // 2)]
            reviews = conn.execute(
                "INSERT INTO reviews (product_id, customer_id, rating, body) "
                "SELECT p, %s, r, %s FROM unnest(%s::bigint[], %s::smallint[]) AS t(p, r) "
                "RETURNING id, product_id",
                [
                    self.customer, f"{review_prefix(run)}0",
                    targets, [rng.randint(1, 5) for _ in targets],
                ],
            ).fetchall()  # fmt: skip
        self.pool = Pool(ids[: load.hot_rows], ids[load.hot_rows :], {r: p for r, p in reviews})
        self._wait_searchable(ids, len(reviews))
        for _ in range(load.sessions):
            self.conns.append(psycopg.connect(self.settings.postgres.dsn(), autocommit=True))

    def _wait_searchable(self, ids: list[int], reviews: int) -> None:
        self.progress("waiting until they are all searchable ...")
        deadline = time.monotonic() + SEARCHABLE_S
        while True:
            found = self.es.search(
                index=self.products.alias,
                query={"ids": {"values": [str(i) for i in ids]}},
                size=0,
                track_total_hits=True,
                aggs={"reviews": {"sum": {"field": "review_count"}}},
            ).body
            docs, summed = found["hits"]["total"]["value"], found["aggregations"]["reviews"]
            if docs == len(ids) and int(summed["value"] or 0) == reviews:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"after {SEARCHABLE_S:g}s {docs}/{len(ids)} bench products searchable: "
                    "is the stream worker running?"
                )
            time.sleep(0.5)

    def cleanup(self) -> None:
        for conn in self.conns:
            conn.close()
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as conn:
            deleted = conn.execute(
                "DELETE FROM products WHERE sku LIKE %s", [f"bench-{self.run}-%"]
            ).rowcount
            if self.customer is not None:
                conn.execute("DELETE FROM reviews WHERE customer_id = %s", [self.customer])
                conn.execute("DELETE FROM customers WHERE id = %s", [self.customer])
            conn.execute(
                sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sql.Identifier(self.sequence))
            )
        self.progress(f"deleted the {deleted} bench products, their reviews and the reviewer")

    # --- the threads that run for the whole measurement ---

    def start(self) -> None:
        self.consumer = self._debezium_consumer()
        for target in (self._poll, self._listen):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        """Stop every thread (the writer's first: none may commit once the cleanup ran)."""
        self.stop.set()
        for thread in self.sessions + self.threads:
            thread.join(10)
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    def _debezium_consumer(self) -> Consumer:
        """A consumer assigned to the end of the products and reviews topics, positions known."""
        topics = [self.products.topic, self.products.child_topics[REVIEWS]]
        consumer = Consumer(
            {
                **self.settings.kafka.client_config(),
                "group.id": f"bench-freshness-{self.run}",
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
            }
        )
        partitions = []
        for topic in topics:
            described = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p, OFFSET_END) for p in described.partitions]
        consumer.assign(partitions)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            consumer.consume(100, 0.2)
            if all(p.offset >= 0 for p in consumer.position(partitions)):
                break
        return consumer

    def _listen(self) -> None:
        assert self.consumer is not None
        skus, bodies = f"bench-{self.run}-", review_prefix(self.run)
        while not self.stop.is_set():
            # Wait for the first message only: a batch consume waits until its batch is full
            # or its timeout ends, which would add up to that timeout to every latency.
            first = self.consumer.poll(0.1)
            arrived_ms = time.time() * 1000
            if first is None:
                continue
            messages = [first, *self.consumer.consume(1000, 0)]
            for message in messages:
                value = message.value()
                if message.error() is not None or not value:
                    continue
                row = orjson.loads(value)
                if str(row.get("sku", "")).startswith(skus) or str(row.get("body", "")).startswith(
                    bodies
                ):
                    with self.lock:
                        self.debezium_ms.append(arrived_ms - row["__source_ts_ms"])

    def _poll(self) -> None:
        warned = False
        while not self.stop.is_set():
            began = time.monotonic()
            with self.lock:
                wanted = [(pid, list(changes)) for pid, changes in self.pending.items()]
            try:
                for at in range(0, len(wanted), POLL_IDS):
                    self._search(wanted[at : at + POLL_IDS])
                warned = False
            except ESTransportError as exc:
                if not warned:
                    self.progress(f"[yellow]poll failed, retrying:[/] {exc}")
                    warned = True
            time.sleep(max(0.0, POLL_S - (time.monotonic() - began)))

    def _search(self, wanted: Sequence[tuple[int, list[Change]]]) -> None:
        """Settle the changes in `wanted` (all committed before it was taken) that the documents
        show. Only those: the search asks for their review entries and no later change's."""
        fields = ["name", "price", "stock"]
        fields += [
            f"hw_children.{REVIEWS}.{c.review_id}"
            for _, changes in wanted
            for c in changes
            if c.review_id is not None
        ]
        sent = time.monotonic()
        hits = self.es.search(
            index=self.products.alias,
            query={"ids": {"values": [str(pid) for pid, _ in wanted]}},
            size=len(wanted),
            source={"includes": fields},
            track_total_hits=False,
        ).body["hits"]["hits"]
        seen_at = time.monotonic()
        docs = {int(hit["_id"]): hit["_source"] for hit in hits}
        with self.lock:
            self.searches.append((len(wanted), seen_at - sent))
            for pid, changes in wanted:
                doc = docs.get(pid)
                settled = False
                for change in changes:
                    if change.seen is None and is_seen(change, doc, self.run):
                        change.seen = seen_at
                        self.pool.seen(change)
                        settled = True
                if settled and pid in self.pending:
                    left = [c for c in self.pending[pid] if c.seen is None]
                    if left:
                        self.pending[pid] = left
                    else:
                        del self.pending[pid]

    # --- the writer ---

    def step(self, rate: float, duration: float, meter: CpuMeter) -> dict[str, Any]:
        """Commit at `rate` for `duration`, then wait for what is still to be seen. `meter`
        measures the cores each process used while the sessions wrote."""
        with self.lock:
            self.log = _StepLog()
            debezium_from, searches_from = len(self.debezium_ms), len(self.searches)
        finished: list[float] = []
        start = time.monotonic()
        self.sessions = sessions = [
            threading.Thread(
                target=self._session, args=(conn, i, rate, start, duration, finished), daemon=True
            )
            for i, conn in enumerate(self.conns)
        ]
        meter.start()
        for session in sessions:
            session.start()
        report = start + PROGRESS_S
        while any(s.is_alive() for s in sessions):
            time.sleep(0.1)
            if time.monotonic() >= report:
                self._report_progress(start)
                report += PROGRESS_S
        cores = meter.stop()
        if self.failure is not None:
            raise RuntimeError(f"a writer session failed: {self.failure!r}") from self.failure
        elapsed = max(finished) - start
        self._drain()
        with self.lock:
            log = self.log
            # What is left was given up on: stop polling it; its rows stay busy (never deleted).
            self.pending.clear()
            debezium = self.debezium_ms[debezium_from:]
            searches = self.searches[searches_from:]
        if log.errors:
            self.progress(f"[yellow]{len(log.errors)} transactions failed[/], e.g. {log.errors[0]}")
        summary = summarise_step(
            rate, start, elapsed, log.changes, len(log.errors), debezium, log.transactions_s
        )
        summary["error_samples"] = sorted(set(log.errors))[:3]
        summary["cpu_cores"] = cores
        # The poller's own load on Elasticsearch, to judge how much it weighs on what it measures.
        summary["poll_searches"] = {
            "count": len(searches),
            "mean_docs": round(sum(n for n, _ in searches) / len(searches), 1) if searches else 0,
            "ms": latency_summary([s * 1000 for _, s in searches]),
        }
        return summary

    def _report_progress(self, start: float) -> None:
        at = time.monotonic() - start
        with self.lock:
            changes = list(self.log.changes)
        seen = [c.latency_s * 1000 for c in changes if c.latency_s is not None]
        p95 = latency_summary(seen)["p95"]
        self.progress(
            f"  {at:4.0f}s  {len(changes)} committed ({len(changes) / at:.0f}/s), "
            f"{len(seen)} seen, p95 so far {_ms(p95)} ms"
        )

    def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            with self.lock:
                if not any(c.seen is None for c in self.log.changes):
                    return
            time.sleep(0.1)
        self.progress(f"[yellow]changes still not searchable {DRAIN_S:g}s after the step[/]")

    def _session(
        self, conn: psycopg.Connection[Any], index: int, rate: float, start: float,
        duration: float, finished: list[float],
    ) -> None:  # fmt: skip
        """One application session: paced transactions until the step ends."""
        try:
            self._transactions(conn, index, rate, start, duration)
        except Exception as exc:
            self.failure = exc
            self.stop.set()
        finally:
            finished.append(time.monotonic())

    def _transactions(
        self, conn: psycopg.Connection[Any], index: int, rate: float, start: float,
        duration: float,
    ) -> None:  # fmt: skip
        load = self.load
        rng = random.Random(f"{self.run}-{rate:g}-{index}")
        interval = load.txn_interval_s(rate)
        max_lag = max(2 * interval, MIN_LAG_S)
        due, end = start + interval * index / load.sessions, start + duration
        while due < end and not self.stop.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            with self.lock:
                planned = [
                    c for _ in range(load.txn_rows) if (c := self.pool.plan(rng, load.hot_share))
                ]
            if not planned:  # nothing fits now (say, every row busy): skip this slot
                due = next_due(due, interval, time.monotonic(), max_lag)
                continue
            # One lock order for every transaction: two batched ones cannot deadlock.
            planned.sort(key=lambda c: c.product_id or 0)
            began = time.monotonic()
            try:
                if len(planned) == 1:
                    self._apply(conn, planned[0], rng)
                else:
                    with conn.transaction():
                        for change in planned:
                            self._apply(conn, change, rng)
            except psycopg.Error as exc:
                with self.lock:
                    for change in planned:
                        self.pool.failed(change)
                    self.log.errors.append(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
            else:
                committed = time.monotonic()
                with self.lock:
                    self.log.transactions_s.append(committed - began)
                    for change in planned:
                        change.committed = committed
                        self.pool.committed(change)
                        assert change.product_id is not None
                        self.pending.setdefault(change.product_id, []).append(change)
                        self.log.changes.append(change)
            due = next_due(due, interval, time.monotonic(), max_lag)

    def _apply(self, conn: psycopg.Connection[Any], change: Change, rng: random.Random) -> None:
        """Run one change's statement; fill in its number (and the id of what it created)."""
        run, q = self.run, self.sql
        kind = change.kind
        if kind in ROW_KINDS:
            params = (
                [name_prefix(run), change.product_id] if kind == "name" else [change.product_id]
            )
            seq, value = _one(conn, getattr(q, kind), params)
            _check(kind, value, row_value(kind, run, seq))
        elif kind == "review_insert":
            seq, change.review_id = _one(
                conn, q.review_insert,
                [change.product_id, self.customer, rng.randint(1, 5), review_prefix(run)],
            )  # fmt: skip
        elif kind == "review_delete":
            (seq,) = _one(conn, q.review_delete, [change.review_id])
        elif kind == "product_insert":
            row = product_row(run, next(self.skus))
            seq, change.product_id, name, price = _one(
                conn, q.product_insert,
                [row["sku"], name_prefix(run), row["description"], row["category"], row["brand"]],
            )  # fmt: skip
            _check(kind, (name, price), (name_of(run, seq), price_of(seq)))
        elif kind == "product_delete":
            (seq,) = _one(conn, q.product_delete, [change.product_id])
        else:
            raise ValueError(f"unknown change kind {kind!r}")
        change.seq = int(seq)


def _one(conn: psycopg.Connection[Any], query: str, params: Sequence[Any]) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise psycopg.DataError(f"no row changed by: {query[:60]} ...")
    return tuple(row)


def _check(kind: str, value: Any, expected: Any) -> None:
    if value != expected:
        raise _EncodingMismatch(
            f"{kind}: PostgreSQL wrote {value!r}, the poller expects {expected!r}"
        )


# --- the run --------------------------------------------------------------------------------------


def _worker_stages(streams: StreamsSettings, workers: _Workers) -> dict[str, Any] | None:
    """The workers' stage histograms now, added up (None if a worker does not keep them)."""
    per_worker = []
    for port in workers.ports:
        url = f"http://{streams.web_host}:{port}/search/stats/"
        try:
            stages = httpx.get(url, timeout=5).json().get("stages_ms")
        except (httpx.HTTPError, ValueError):
            return None
        if stages is None:
            return None
        per_worker.append(stages)
    names = {name for stages in per_worker for name in stages}
    return {name: added(s[name] for s in per_worker if name in s) for name in names}


def _stage_summaries(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Latency from Kafka to each of the worker's stages during one step."""
    if before is None or after is None:
        return None
    return {name: summary(since(after[name], before.get(name))) for name in after}


def _index_documents(es: Elasticsearch, index: DeclaredIndex) -> dict[str, int]:
    """Documents in the index behind the alias (dead markers included) and the live ones."""
    stats = es.indices.stats(index=index.alias, metric="docs").body["_all"]["primaries"]["docs"]
    live = es.count(index=index.alias).body["count"]  # the alias shows live documents only
    return {"all": int(stats["count"]), "live": int(live)}


def _processes(settings: Settings, workers: _Workers) -> dict[str, int]:
    """The processes whose cores a step measures: the stack's services, the workers, the bench."""
    stack = Stack(settings)
    pids = {name: pid for name in stack.services if (pid := stack.managed_pid(name)) is not None}
    if len(workers.pids) == 1:
        pids["stream worker"] = workers.pids[0]
    else:
        pids.update({f"stream worker {i}": pid for i, pid in enumerate(workers.pids)})
    return {**pids, "bench (writer, poller)": os.getpid()}


def run_freshness(
    settings: Settings, load: Load, find_max: bool, progress: Progress, profile: bool = False
) -> dict[str, Any]:
    """Measure the main step (and with `find_max` a ramp until a rate is not sustained) and the
    raw limits; the result as a JSON-ready dict. The bench rows are deleted however it ends.
    With `profile`, the worker is sampled during the main step (where its CPU goes by stage)."""
    load.check()
    streams = StreamsSettings()
    es = client(settings.elasticsearch, timeout_s=60)
    pipelines, bindings = resolve(settings)
    products = declared_indexes(pipelines, bindings, settings.indexes.prefix)["products"]
    worker = _ensure_worker(settings, streams)
    progress(
        "stream worker: started"
        if worker.started_here
        else f"stream workers: reusing the {len(worker.pids)} running"
    )
    caught_up_s = _wait_caught_up(streams, worker, progress)
    bench = _Bench(settings, load, es, products, progress)
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "run": bench.run,
        "cpus": os.cpu_count(),
        "load": {**load.__dict__, "mix": MIX},
        "poll_interval_ms": POLL_S * 1000,
        # Deleted rows stay as dead markers and every change costs more as they pile up: runs
        # compare only at similar sizes.
        "index_documents": _index_documents(es, products),
        "worker": "started" if worker.started_here else "reused",
        "workers": len(worker.pids),
        # How long the workers took to work off a backlog before the run began.
        "caught_up_s": caught_up_s,
    }
    steps: list[dict[str, Any]] = []
    meter = CpuMeter(_processes(settings, worker))
    try:
        bench.setup()
        bench.start()
        if load.warmup_s > 0:
            progress(f"warm-up: {load.rate:g} changes/s for {load.warmup_s:g}s, not measured ...")
            warm = bench.step(load.rate, load.warmup_s, meter)
            result["warmup"] = {"latency_ms": warm["latency_ms"], "sustained": warm["sustained"]}
        plan = [(load.rate, load.duration_s)]
        if find_max:
            plan += [(r, min(load.duration_s, RAMP_STEP_S)) for r in ramp_rates(load.rate)]
        for rate, duration in plan:
            progress(f"step: {rate:g} changes/s for {duration:g}s ...")
            profiler = None
            if profile and not steps:
                out = settings.stack.data_dir / "logs" / f"bench-freshness-{bench.run}.pyspy"
                profiler = Profiler(worker.pids[0], out, duration)
                if not profiler.start():
                    progress("[yellow]py-spy is not installed: no profile[/]")
                    profiler = None
            stages_before = _worker_stages(streams, worker)
            steps.append(bench.step(rate, duration, meter))
            steps[-1]["worker_from_kafka_ms"] = _stage_summaries(
                stages_before, _worker_stages(streams, worker)
            )
            if profiler is not None:
                samples = profiler.samples()
                result["profile"] = {
                    "samples": sum(n for _, n in samples),
                    "by_stage": by_stage(samples),
                    "by_function": by_function(samples),
                }
            progress(f"  {verdict(steps[-1])}")
            if not steps[-1]["sustained"]:
                break
        bench.close()
        progress("raw limits: Elasticsearch bulk, bare Kafka consumer ...")
        es_docs_s = es_bulk_docs_per_s(es, products)
        kafka_msgs_s = kafka_consume_msgs_per_s(settings)
    finally:
        bench.close()
        bench.cleanup()
        if worker.started_here and worker.proc is not None:
            worker.proc.terminate()
            worker.proc.wait(30)
    sustained = [s["target_rate"] for s in steps if s["sustained"]]
    max_rate = max(sustained, default=0.0)
    stopped = next((s for s in steps if not s["sustained"]), None)
    result.update(
        steps=steps,
        max_sustained_rate=max_rate,
        stopped_at=None if stopped is None else {
            "rate": stopped["target_rate"],
            "problems": stopped["problems"],
            "writer_limited": stopped["writer_limited"],
            "verdict": verdict(stopped),
        },
        debezium_commit_to_kafka_ms=steps[0]["debezium_commit_to_kafka_ms"],
        es_bulk_docs_per_s=round(es_docs_s),
        kafka_consume_msgs_per_s=round(kafka_msgs_s),
        pipeline_vs_es_bulk=round(max_rate / es_docs_s, 3),
        pipeline_vs_kafka_consume=round(max_rate / kafka_msgs_s, 3),
    )  # fmt: skip
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share_of_p50(p50: float | None, end_to_end: dict[str, Any]) -> str:
    """A stage's p50 as a share of the end-to-end p50 ("" when either is unknown)."""
    if p50 is None or not end_to_end["p50"]:
        return ""
    return f"{p50 / end_to_end['p50']:.0%} of p50"


def _documents(result: dict[str, Any]) -> str:
    docs = result.get("index_documents")
    return "-" if not docs else f"{docs['all']:,} ({docs['live']:,})"


def _worker_rows(main: dict[str, Any], end_to_end: dict[str, Any]) -> list[list[str]]:
    """Rows of the stages table for the worker's own figures, if it keeps them."""
    stages = main.get("worker_from_kafka_ms")
    if not stages:
        return []
    names = {
        "fetched": "Kafka to the search lane",
        "acked": "Kafka to acknowledged by Elasticsearch",
    }
    rows = []
    for key, label in names.items():
        s = stages.get(key)
        if s is None:
            continue
        share = _share_of_p50(s["p50"], end_to_end)
        rows.append(
            [
                f"{label} ms (p50/p95/p99)",
                f"{_ms(s['p50'])} / {_ms(s['p95'])} / {_ms(s['p99'])}",
                share,
            ]
        )
    return rows


def print_report(result: dict[str, Any]) -> None:
    """The result as tables: the steps' load and latency, the main step per kind, the stages
    and raw limits."""
    steps = result["steps"]
    load = result["load"]
    warm = result.get("warmup")
    if warm is not None:
        latency = warm["latency_ms"]
        console.print(
            f"warm-up, {load['warmup_s']:g} s (not measured): p50 {_ms(latency['p50'])} ms, "
            f"p95 {_ms(latency['p95'])} ms; waited {result.get('caught_up_s', 0):g} s for the "
            "workers to catch up before it"
        )
    print_table(
        f"steps: {load['sessions']} sessions, {load['txn_rows']} change(s) per transaction, "
        f"{load['hot_share']:g} of row changes on {load['hot_rows']} hot rows",
        ["rate/s", "achieved/s", "changes", "seen", "errors", "sustained"],
        [
            [f"{s['target_rate']:g}", f"{s['achieved_rate']:g}", s["changes"], s["seen"],
             s["errors"], "yes" if s["sustained"] else "no: " + "; ".join(s["problems"])]
            for s in steps
        ],
    )  # fmt: skip
    print_table(
        "commit-to-searchable latency per step (ms)",
        ["rate/s", "p50", "p95", "p99", "max", "hot p95", "cold p95", "Debezium p95"],
        [
            [f"{s['target_rate']:g}",
             *(_ms(s["latency_ms"][q]) for q in ("p50", "p95", "p99", "max")),
             _ms(s["hot_ms"]["p95"]), _ms(s["cold_ms"]["p95"]),
             _ms(s["debezium_commit_to_kafka_ms"]["p95"])]
            for s in steps
        ],
    )  # fmt: skip
    main = steps[0]
    print_table(
        f"by kind at {main['target_rate']:g}/s (ms)",
        ["kind", "changes", "seen", "p50", "p95", "p99", "max"],
        [
            [kind, k["changes"], k["seen"], _ms(k["p50"]), _ms(k["p95"]), _ms(k["p99"]),
             _ms(k["max"])]
            for kind, k in main["by_kind"].items()
        ],
    )  # fmt: skip
    cpus = result["cpus"] or 1
    print_table(
        f"cores used while writing at {main['target_rate']:g}/s (of {cpus})",
        ["process", "cores", "share of the machine"],
        [[name, f"{cores:.2f}", f"{cores / cpus:.0%}"] for name, cores in main["cpu_cores"].items()]
        + [["all", f"{sum(main['cpu_cores'].values()):.2f}",
            f"{sum(main['cpu_cores'].values()) / cpus:.0%}"]],
    )  # fmt: skip
    if "profile" in result:
        profiled = result["profile"]
        print_table(
            f"stream worker CPU by stage at {main['target_rate']:g}/s "
            f"({profiled['samples']} samples)",
            ["stage", "share"],
            [[stage, f"{share:.0%}"] for stage, share in profiled["by_stage"]],
        )
        print_table(
            "stream worker CPU by function (self time)",
            ["function", "share"],
            [[function, f"{share:.0%}"] for function, share in profiled["by_function"]],
        )
    debezium, end_to_end = main["debezium_commit_to_kafka_ms"], main["latency_ms"]
    polls, txn = main["poll_searches"], main["transaction_ms"]
    stopped = result["stopped_at"]
    max_rate = result["max_sustained_rate"]
    limit = "-" if stopped is None else f"{stopped['rate']:g}/s {stopped['verdict']}"
    share = _share_of_p50(debezium["p50"], end_to_end)

    def ratio(key: str) -> str:
        return f"{result[key]:g}" if max_rate else "-"

    print_table(
        f"stages at {main['target_rate']:g}/s and raw limits on this machine",
        ["measure", "value", "pipeline ratio"],
        [
            ["highest sustained rate/s", f"{max_rate:g}" if max_rate else "-", ""],
            ["index documents at the start (live)", _documents(result), ""],
            ["first rate not sustained", limit, ""],
            ["Debezium commit-to-Kafka ms (p50/p95/p99)",
             f"{_ms(debezium['p50'])} / {_ms(debezium['p95'])} / {_ms(debezium['p99'])}", share],
            *_worker_rows(main, end_to_end),
            ["writer transaction ms (p50/p95)", f"{_ms(txn['p50'])} / {_ms(txn['p95'])}", ""],
            ["poller searches/s, docs each, p95 ms",
             f"{polls['count'] / main['duration_s']:.0f}, {polls['mean_docs']:.0f}, "
             f"{_ms(polls['ms']['p95'])}", ""],
            ["Elasticsearch bulk docs/s (direct)", result["es_bulk_docs_per_s"],
             ratio("pipeline_vs_es_bulk")],
            ["Kafka consume msgs/s (bare aiokafka)", result["kafka_consume_msgs_per_s"],
             ratio("pipeline_vs_kafka_consume")],
        ],
    )  # fmt: skip
