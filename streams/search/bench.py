"""Freshness benchmark: commit-to-searchable latency of product changes, measured end to end.

A writer commits marked changes (a unique token in `description`) to bench-owned product rows
at a fixed rate; a poller searches the products alias every `POLL_S` for the tokens still
pending and stamps each the first time it is searchable (a later change to the same row that
is seen first also settles it). Latency = seen - committed, both on this machine's monotonic
clock; the poll interval bounds the error. The same run measures the machine's raw limits:
Elasticsearch bulk indexing directly, and a bare aiokafka consumer (the workers' Kafka client).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from connectors.sources import resolve
from headwater.console import console, print_table
from headwater.settings import PROJECT_ROOT, Settings
from indexers.catalog import client
from indexers.declared import DeclaredIndex, declared_indexes
from streams.settings import StreamsSettings

POLL_S = 0.05
TICK_S = 0.01
TARGET_P95_S = 1.0


@dataclass
class Step:
    target_rate: float
    achieved_rate: float
    duration_s: float
    changes: int
    seen: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def sustained(self) -> bool:
        return (
            self.p95_ms < TARGET_P95_S * 1000
            and self.achieved_rate >= 0.9 * self.target_rate
            and self.seen == self.changes
        )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Run:
    def __init__(self, settings: Settings, alias: str, product_ids: list[int], run: str) -> None:
        self.settings, self.alias, self.ids, self.run = settings, alias, product_ids, run
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[int, int, float]] = {}  # token -> (pid, seq, committed)
        self.latest_seen: dict[int, int] = {}
        self.latencies: list[float] = []
        self.sent = 0
        self.writing = True

    def token(self, seq: int) -> str:
        return f"hwb{self.run}x{seq}"

    def write(self, rate: float, duration: float) -> float:
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as conn:
            start = time.monotonic()
            while (now := time.monotonic()) - start < duration:
                due = min(int(rate * (now - start)) - self.sent, 500)
                if due > 0:
                    rows = [
                        (self.ids[(self.sent + i) % len(self.ids)], self.sent + i)
                        for i in range(due)
                    ]
                    values = ", ".join(
                        f"({pid}, 'bench change {self.token(seq)}')" for pid, seq in rows
                    )
                    conn.execute(
                        "UPDATE products SET description = v.d, updated_at = now() "
                        f"FROM (VALUES {values}) AS v(id, d) WHERE products.id = v.id"
                    )
                    committed = time.monotonic()
                    with self.lock:
                        for pid, seq in rows:
                            self.pending[self.token(seq)] = (pid, seq, committed)
                    self.sent += due
                time.sleep(TICK_S)
            return time.monotonic() - start

    def poll(self, es: Elasticsearch, until: float) -> None:
        while time.monotonic() < until and (self.writing or self.pending):
            with self.lock:
                tokens = list(self.pending)[:2000]
            if tokens:
                response = es.search(
                    index=self.alias,
                    query={"terms": {"description": tokens}},
                    size=len(tokens),
                    source={"includes": ["id", "description"]},
                )
                seen_at = time.monotonic()
                with self.lock:
                    for hit in response.body["hits"]["hits"]:
                        token = hit["_source"]["description"].rsplit(" ", 1)[-1]
                        found = self.pending.get(token)
                        if found is None:
                            continue
                        pid, seq, _ = found
                        self.latest_seen[pid] = max(seq, self.latest_seen.get(pid, -1))
                    for token, (pid, seq, committed) in list(self.pending.items()):
                        if seq <= self.latest_seen.get(pid, -1):
                            self.latencies.append(seen_at - committed)
                            del self.pending[token]
            time.sleep(POLL_S)


def measure(settings: Settings, es: Elasticsearch, alias: str, ids: list[int], rate: float,
            duration: float) -> Step:  # fmt: skip
    run = _Run(settings, alias, ids, uuid.uuid4().hex[:6])
    poller = threading.Thread(target=run.poll, args=(es, time.monotonic() + duration + 30))
    poller.start()
    elapsed = run.write(rate, duration)
    run.writing = False
    poller.join()
    ms = [v * 1000 for v in run.latencies]
    return Step(
        target_rate=rate,
        achieved_rate=round(run.sent / elapsed, 1),
        duration_s=round(elapsed, 1),
        changes=run.sent,
        seen=len(ms),
        p50_ms=round(_pct(ms, 0.50), 1),
        p95_ms=round(_pct(ms, 0.95), 1),
        p99_ms=round(_pct(ms, 0.99), 1),
        max_ms=round(max(ms), 1) if ms else float("nan"),
    )


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


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes] | None = None
    started_here: bool = False
    log: Path = field(default_factory=Path)


def _ensure_worker(settings: Settings, streams: StreamsSettings) -> _Worker:
    url = f"http://{streams.web_host}:{streams.worker_port(0)}/ready/"

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if ready():
        return _Worker()
    log = settings.stack.data_dir / "logs" / "bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "0"],
            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the stream worker did not become ready; see {log}")
        time.sleep(0.5)
    return _Worker(proc, True, log)


def _bench_products(settings: Settings, count: int, run: str) -> list[int]:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO products (sku, name, description, category, brand, price, stock) "
            "SELECT 'bench-' || %s || '-' || n, 'Bench item ' || n, 'bench change', 'bench', "
            "'Bench', 1.00, 1 FROM generate_series(1, %s) AS n RETURNING id",
            [run, count],
        ).fetchall()
    return [int(r[0]) for r in rows]


def _drop_bench_products(settings: Settings, ids: list[int]) -> None:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM products WHERE id = ANY(%s)", [ids])


def _wait_indexed(es: Elasticsearch, alias: str, ids: list[int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = es.count(index=alias, query={"ids": {"values": [str(i) for i in ids]}})
        if found.body["count"] == len(ids):
            return
        time.sleep(0.5)
    raise RuntimeError(f"bench products not searchable after {timeout}s: is the worker running?")


def run_freshness(settings: Settings, rate: float, duration: float, find_max: bool) -> None:
    streams = StreamsSettings()
    es = client(settings.elasticsearch, timeout_s=60)
    pipelines, bindings = resolve(settings)
    products = declared_indexes(pipelines, bindings, settings.indexes.prefix)["products"]
    alias = products.alias
    worker = _ensure_worker(settings, streams)
    run = uuid.uuid4().hex[:6]
    ids = _bench_products(settings, max(200, int(rate * 1.5), 1500 if find_max else 0), run)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "rate": rate,
        "duration_s": duration,
        "cpus": os.cpu_count(),
        "poll_interval_ms": POLL_S * 1000,
    }
    try:
        _wait_indexed(es, alias, ids)
        console.print(f"measuring {rate:g} changes/s for {duration:g}s ...")
        main = measure(settings, es, alias, ids, rate, duration)
        steps = [main]
        if find_max:
            for step_rate in (250, 500, 1000, 1500, 2000, 3000, 4000):
                if step_rate <= rate:
                    continue
                console.print(f"ramp: {step_rate} changes/s for {min(duration, 15):g}s ...")
                step = measure(settings, es, alias, ids, step_rate, min(duration, 15))
                steps.append(step)
                if not step.sustained:
                    break
        console.print("raw limits: Elasticsearch bulk, bare Kafka consumer ...")
        es_docs_s = es_bulk_docs_per_s(es, products)
        kafka_msgs_s = kafka_consume_msgs_per_s(settings)
    finally:
        _drop_bench_products(settings, ids)
        if worker.started_here and worker.proc is not None:
            worker.proc.terminate()
            worker.proc.wait(30)
    sustained = [s.target_rate for s in steps if s.sustained]
    max_rate = max(sustained, default=0.0)
    results.update(
        measured=asdict(main),
        ramp=[asdict(s) | {"sustained": s.sustained} for s in steps],
        max_sustained_rate=max_rate,
        es_bulk_docs_per_s=round(es_docs_s),
        kafka_consume_msgs_per_s=round(kafka_msgs_s),
        pipeline_vs_es_bulk=round(max_rate / es_docs_s, 3),
        pipeline_vs_kafka_consume=round(max_rate / kafka_msgs_s, 3),
    )
    print_table(
        "commit-to-searchable latency (ms)",
        ["rate/s", "achieved/s", "changes", "seen", "p50", "p95", "p99", "max", "p95<1s"],
        [
            [s.target_rate, s.achieved_rate, s.changes, s.seen, s.p50_ms, s.p95_ms, s.p99_ms,
             s.max_ms, "yes" if s.sustained else "no"]
            for s in steps
        ],
    )  # fmt: skip
    print_table(
        "throughput on this machine",
        ["measure", "per second", "pipeline ratio"],
        [
            ["pipeline: highest rate with p95 < 1 s", max_rate or "-", ""],
            ["Elasticsearch bulk docs (direct)", round(es_docs_s), results["pipeline_vs_es_bulk"]],
            ["Kafka consume msgs (bare aiokafka)", round(kafka_msgs_s),
             results["pipeline_vs_kafka_consume"]],
        ],
    )  # fmt: skip
    from headwater.console import save_result

    console.print(f"saved {save_result(settings.stack.data_dir / 'bench', 'freshness', results)}")
