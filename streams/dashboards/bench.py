"""`headwater bench dashboards`: event-to-dashboard latency and one worker's aggregation rate.

On topics of its own (a `Sandbox`):
1. writes N Debezium-shaped events (9 interactions : 1 order) to the source topics;
2. ceiling: a bare confluent-kafka consumer reads them all (no decoding, no state);
3. throughput: one dashboards worker, started cold, aggregates them; the rate is counted from
   its first to its last progress record on the updates topic (startup excluded);
4. latency: with that worker caught up and the API running, single orders are appended to
   Kafka one at a time; each one's latency is from the broker's acknowledgement to the SSE
   snapshot that includes it (its `__source_ts_ms` marker shows up as `last_event_ms`).
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError

from headwater.models.updates import ProgressUpdate, decode
from headwater.settings import KafkaSettings
from streams.dashboards import synthetic
from streams.dashboards.harness import SOURCE_TABLES, ApiServer, Sandbox


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fill(box: Sandbox, total: int) -> None:
    producer = box.producer()
    now = datetime.now(UTC)
    lsn = itertools.count(1)
    for i in range(total):
        if i % 10 == 0:
            record = synthetic.order(i, lsn=next(lsn), at=now, customer_id=i % 500)
            topic = box.topic("orders")
        else:
            kind = "page_view" if i % 3 else "add_to_cart"
            record = synthetic.interaction(
                i, lsn=next(lsn), at=now, kind=kind, customer_id=i % 500, product_id=i % 200
            )
            topic = box.topic("interactions")
        while True:
            try:
                producer.produce(topic, key=record[0], value=record[1])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def _bare_consumer_rate(box: Sandbox, total: int) -> float:
    consumer = Consumer(
        {
            **box.kafka.client_config(),
            "group.id": f"{box.prefix}-bare",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([box.topic(t) for t in SOURCE_TABLES])
    seen, started = 0, 0.0
    deadline = time.monotonic() + 120
    while seen < total and time.monotonic() < deadline:
        for message in consumer.consume(10_000, 0.5):
            if message.error() is None:
                if not seen:
                    started = time.perf_counter()
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed if elapsed > 0 else 0.0


def _worker_rate(box: Sandbox, total: int) -> tuple[float, float]:
    """Events/s of one worker from cold, and how long it took to start consuming."""
    consumer = Consumer(
        {
            **box.kafka.client_config(),
            "group.id": f"{box.prefix}-watch",
            "auto.offset.reset": "earliest",
        }
    )
    launched = time.perf_counter()
    worker = box.start_worker("bench-worker")
    consumer.subscribe([box.dashboard_settings.updates_topic])
    events: dict[str, int] = {}
    first = last = 0.0
    deadline = time.monotonic() + 300
    while sum(events.values()) < total and time.monotonic() < deadline:
        if worker.poll() is not None:
            consumer.close()
            log = box.work_dir / "bench-worker.log"
            raise RuntimeError(f"the dashboards worker exited ({worker.returncode}); see {log}")
        for message in consumer.consume(5000, 0.2):
            error, value = message.error(), message.value()
            if error is not None:
                if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise RuntimeError(str(error))
                continue
            if value is None:
                continue
            update = decode(value)
            if isinstance(update, ProgressUpdate):
                now = time.perf_counter()
                first = first or now
                last = now
                events[f"{update.stream}#{update.partition}"] = update.events
    consumer.close()
    done = sum(events.values())
    if done < total:
        raise RuntimeError(f"the worker aggregated only {done} of {total} events in time")
    # The first progress record comes after the first batch; count that batch out.
    return (done / (last - first) if last > first else 0.0), first - launched


def _latencies(box: Sandbox, probes: int) -> list[float]:
    seen: dict[int, float] = {}
    sent: dict[int, float] = {}
    ready = threading.Event()
    with ApiServer(box.kafka_settings, box.dashboard_settings) as api:

        def listen() -> None:
            for snapshot in api.stream("sales", timeout=120):
                ready.set()
                marker = snapshot.get("last_event_ms") or 0
                now = time.perf_counter()
                for probe in list(sent):
                    if probe <= marker and probe not in seen:
                        seen[probe] = now
                if len(seen) >= probes:
                    return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        ready.wait(60)
        producer = box.producer()
        base = int(time.time() * 1000) * 10  # above every source_ts_ms the fill used
        for i in range(probes):
            marker = base + i
            record = synthetic.order(
                10_000_000 + i,
                lsn=10_000_000 + i,
                at=datetime.now(UTC),
                source_ts_ms=marker,
            )

            def acked(err: Any, msg: Any, marker: int = marker) -> None:
                sent[marker] = time.perf_counter()

            producer.produce(box.topic("orders"), key=record[0], value=record[1], on_delivery=acked)
            producer.flush(10)
            deadline = time.monotonic() + 5
            while marker not in seen and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.02)
        thread.join(timeout=5)
    return [(seen[m] - sent[m]) * 1000 for m in sent if m in seen]


def run(
    kafka: KafkaSettings,
    work_dir: Path,
    events: int,
    probes: int,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    work_dir.mkdir(parents=True, exist_ok=True)
    box = Sandbox(kafka=kafka, work_dir=work_dir, lateness_s=3600.0)
    box.create_topics()
    try:
        began = time.perf_counter()
        say(f"writing {events:,} events to {box.prefix}.* ...")
        _fill(box, events)
        took = time.perf_counter() - began
        say(f"  done in {took:.1f}s; ceiling: a bare consumer reads them ...")
        bare = _bare_consumer_rate(box, events)
        say(f"  {bare:,.0f} events/s; one dashboards worker aggregates them from cold ...")
        rate, startup_s = _worker_rate(box, events)
        say(f"  {rate:,.0f} events/s; timing {probes} single orders end to end ...")
        latencies = _latencies(box, probes)
    finally:
        box.stop()
        box.delete_topics()
        shutil.rmtree(box.work_dir / "state", ignore_errors=True)  # this run's tables only
    return {
        "events": events,
        "bare_consumer_events_per_s": round(bare),
        "worker_events_per_s": round(rate),
        "worker_startup_s": round(startup_s, 2),
        "probes": len(latencies),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 1) if latencies else None,
            "p95": round(_percentile(latencies, 0.95), 1) if latencies else None,
            "p99": round(_percentile(latencies, 0.99), 1) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
    }


def report_lines(result: dict[str, Any]) -> list[tuple[str, str]]:
    latency = result["latency_ms"]
    return [
        ("latency p50 / p95 / p99 (ms)", f"{latency['p50']} / {latency['p95']} / {latency['p99']}"),
        ("probes", str(result["probes"])),
        ("one worker (events/s)", f"{result['worker_events_per_s']:,}"),
        ("bare Kafka consumer (events/s)", f"{result['bare_consumer_events_per_s']:,}"),
        ("events", f"{result['events']:,}"),
    ]
