"""The dashboards' Faust topics and tables: windowed aggregates, order state, progress, categories.

Every table is co-partitioned with the source change topics (`source_partitions`), keeps its
state in the app's store (RocksDB on the workers) and has a compacted changelog topic, from
which a restarted worker rebuilds it.

The aggregates are per source partition: an aggregate key is `<metric>#<partition>`, so each
partition owns its own partial sums and a partition moved to another worker takes its partials
along. The partials are merged where they are read (`views.DashboardState`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TableT, TopicT
from faust.types.windows import WindowRange_from_start

from headwater.settings import KafkaSettings
from streams.common import RAW
from streams.dashboards import logic
from streams.dashboards.settings import DashboardSettings


@dataclass(frozen=True)
class Topics:
    orders: TopicT
    order_items: TopicT
    interactions: TopicT
    products: TopicT
    # order_items re-keyed by their order id, into the partition the order itself is in.
    order_lines: TopicT
    updates: TopicT


@dataclass(frozen=True)
class Tables:
    windowed: dict[str, TableT]  # logic table name -> the underlying (windowed) Faust table
    order_state: TableT
    progress: TableT
    categories: TableT
    seen_facts: TableT


def declare_topics(app: faust.App, kafka: KafkaSettings, ds: DashboardSettings) -> Topics:
    retention_ms = int(ds.retention_s * 1000)
    return Topics(
        orders=app.topic(kafka.cdc_topic("orders"), **RAW),
        order_items=app.topic(kafka.cdc_topic("order_items"), **RAW),
        interactions=app.topic(kafka.cdc_topic("interactions"), **RAW),
        products=app.topic(kafka.cdc_topic("products"), **RAW),
        order_lines=app.topic(
            f"{app.conf.id}-dashboards-order-lines",
            partitions=ds.source_partitions,
            internal=True,
            **RAW,
        ),
        updates=app.topic(
            ds.updates_topic,
            partitions=ds.updates_partitions,
            internal=True,
            # Compacted to the latest value of each window, and old windows age out.
            config={"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)},
            **RAW,
        ),
    )


def declare_tables(app: faust.App, ds: DashboardSettings) -> Tables:
    windowed: dict[str, TableT] = {}
    for spec in logic.WINDOWS:
        table = app.Table(
            f"dashboards-{spec.table.replace('_', '-')}",
            default=None,
            partitions=ds.source_partitions,
            help=f"{spec.kind} per {spec.size_s}s window (step {spec.step_s}s), per partition",
        )
        wrapper = (
            table.hopping(spec.size_s, spec.step_s, expires=ds.retention_s)
            if spec.hopping
            else table.tumbling(spec.size_s, expires=ds.retention_s)
        )
        windowed[spec.table] = wrapper.table
    return Tables(
        windowed=windowed,
        order_state=app.Table(
            "dashboards-order-buckets",
            default=None,
            partitions=ds.source_partitions,
            help="Last seen version of each order and its lines, to emit retractions; "
            "in buckets of consecutive order ids (agents.OrderStates)",
        ),
        progress=app.Table(
            "dashboards-progress",
            default=None,
            partitions=ds.source_partitions,
            help="Event-time watermark and counts per agent and partition",
        ),
        seen_facts=app.Table(
            "dashboards-seen-facts",
            default=None,
            partitions=ds.source_partitions,
            help="Ids of the insert-only facts counted within the allowed lateness, one entry "
            "per batch (agents.SeenFacts)",
        ),
        categories=app.GlobalTable(
            "dashboards-product-category",
            default=None,
            partitions=ds.source_partitions,
            help="Category of each product, read by every worker to split revenue",
        ),
    )


def window_key(metric: str, partition: int, start: int, spec: logic.WindowSpec) -> Any:
    """The key Faust's windowed table stores a window under."""
    return (f"{metric}#{partition}", WindowRange_from_start(float(start), float(spec.size_s)))


def order_key_partition(order_id: int, partitions: int) -> int:
    """The partition Debezium's producer puts order `order_id` in (Kafka's default partitioner:
    murmur2 of the key bytes, which the JSON converter writes as `{"id":N}`)."""
    key = json.dumps({"id": order_id}, separators=(",", ":")).encode()
    return (murmur2(key) & 0x7FFFFFFF) % partitions
