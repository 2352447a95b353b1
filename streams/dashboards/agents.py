"""Dashboard agents: read the change streams, fold them into the windowed tables, publish updates.

Thin: decoding, retraction and windowing are in `logic`. The aggregating agents are batch
agents (`streams.transport`): each fetch of a partition's records is folded at once, the
tables are written once per changed window and order, and every changed window value is
published to the `dashboards.updates` topic. A busy partition arrives in large fetches, so the
cost per event falls as the rate rises; a quiet one arrives a record at a time, so an event is
on the dashboards as soon as it is read. The partition's progress records the offset of the
last record folded in, so a record delivered again after a restart is not counted twice.

Why publish instead of serving from the tables: a worker only holds the partitions it owns, so
a reader would have to ask each worker (Faust's table routing) and merge. Instead each worker
writes the new value of each changed window of its partitions (key `w|table|metric|partition|
start`, compacted, so the topic is the latest value of every window) and its progress per
partition. The API reads that whole topic: any API instance knows every partition, whichever
worker owns it, and a live stream is "tell the browser when this changes".

The records published are the typed contracts of `headwater.models.updates`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT, StreamT

from headwater.models.cdc import ChangeEvent, MalformedEvent, decode_change
from headwater.models.updates import LabelUpdate, ProgressUpdate, WindowUpdate, encode
from headwater.resilience import DeadLetter
from headwater.settings import KafkaSettings
from streams.common import DeadLetterSender, Record
from streams.dashboards import logic
from streams.dashboards.logic import Delta, OrderState, Progress
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.tables import (
    Tables,
    Topics,
    declare_tables,
    declare_topics,
    order_key_partition,
    window_key,
)
from streams.transport import App, Batch, writing_as

log = logging.getLogger(__name__)

PUBLISHED_LABELS_MAX = 100_000
# The dashboards' batch agents run in one lane, apart from the search agent's Elasticsearch waits.
LANE = "dashboards"

# (deltas, event time, dropped) of one change.
Handled = tuple[list[Delta], int | None, int]


ORDERS_PER_BUCKET = 256


class OrderStates:
    """The order-state table as one batch of one partition sees it.

    Orders are kept in buckets of `ORDERS_PER_BUCKET` consecutive ids (table key
    `<partition>/<id // ORDERS_PER_BUCKET>`, value `{id: state}`): each table write is a
    changelog message, and order ids grow with time, so a batch of thousands of new orders
    writes a few dozen buckets instead of one message per order. An order and its lines
    always come through the same partition, so a bucket is only ever written by one.

    Why 256: a changelog message costs far more to send than its bytes, so fewer, larger
    buckets are faster (64 gave 17-25k events/s in the benchmark, 256 gave 26-33k). Over the
    source's 3 partitions a bucket holds about 85 orders, some 17 KB; a correction to an old
    order rewrites its bucket."""

    def __init__(self, table: MutableMapping[str, Any], partition: int) -> None:
        self.table = table
        self.partition = partition
        self.buckets: dict[str, dict[str, Any]] = {}  # read in this batch
        self.dirty: set[str] = set()

    def _bucket(self, order_id: int) -> tuple[str, dict[str, Any]]:
        key = f"{self.partition}/{order_id // ORDERS_PER_BUCKET}"
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = dict(self.table.get(key) or {})
        return key, bucket

    def get(self, order_id: int) -> OrderState:
        _, bucket = self._bucket(order_id)
        return OrderState.from_json(bucket.get(str(order_id)))

    def put(self, order_id: int, state: OrderState) -> None:
        key, bucket = self._bucket(order_id)
        bucket[str(order_id)] = state.to_json()
        self.dirty.add(key)

    def write(self) -> None:
        for key in self.dirty:
            self.table[key] = self.buckets[key]
        self.dirty.clear()


Handler = Callable[[ChangeEvent, Progress, OrderStates], Handled]


@dataclass
class Dashboards:
    """What `register` declared on the app (tests and the benchmark look at it)."""

    topics: Topics
    tables: Tables


def register(app: App, kafka: KafkaSettings, ds: DashboardSettings) -> Dashboards:
    """Declare the dashboards' topics, tables and agents on `app`."""
    topics = declare_topics(app, kafka, ds)
    tables = declare_tables(app, ds)
    lateness_ms = int(ds.allowed_lateness_s * 1000)
    dead_letters = DeadLetterSender(app, kafka.dead_letter_topic)

    async def dead_letter(event: EventT, error: Exception, stage: str) -> None:
        await dead_letters.send([Record.of_event(event).dead_letter(error, stage)])

    def publish_windows(
        folded: dict[logic.WindowKey, Any], partition: int
    ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        for (table_name, metric, start), increment in folded.items():
            spec = logic.WINDOWS_BY_TABLE[table_name]
            table = tables.windowed[table_name]
            key = window_key(metric, partition, start, spec)
            value = logic.merge(spec.kind, table.get(key), increment)
            table[key] = value
            out.append(
                encode(
                    WindowUpdate(
                        table=table_name,
                        metric=metric,
                        partition=partition,
                        start=start,
                        value=value,
                    )
                )
            )
        return out

    declared: list[bool] = []  # the updates topic, once per process

    def take(name: str, handle: Handler) -> Callable[[Sequence[Batch]], Any]:
        """The batch agent of one stream: each partition's batch in turn (`take_batch`)."""

        async def take_batches(batches: Sequence[Batch]) -> None:
            for batch in batches:
                await take_batch(batch)

        async def take_batch(batch: Batch) -> None:
            """Decode, handle and fold a partition's batch, write the tables, publish the
            changed windows and the progress."""
            partition = batch.tp.partition
            progress_key = f"{name}#{partition}"
            failed: list[tuple[Any, MalformedEvent]] = []
            with writing_as(batch.last):
                progress = Progress.from_json(tables.progress.get(progress_key))
                orders = OrderStates(tables.order_state, partition)
                deltas: list[Delta] = []
                for record in batch.records:
                    if record.offset <= progress.offset:
                        continue  # folded in before a restart; delivered again since
                    try:
                        change = decode_change(record.key, record.value)
                        if change is None:  # tombstone: compaction's business, not ours
                            continue
                        new, at_ms, dropped = handle(change, progress, orders)
                    except MalformedEvent as exc:
                        failed.append((record, exc))
                        continue
                    except (KeyError, TypeError, ValueError) as exc:  # a row of the wrong shape
                        failed.append((record, MalformedEvent(f"{type(exc).__name__}: {exc}")))
                        continue
                    progress.note(change, at_ms, dropped)
                    deltas.extend(new)
                progress.offset = batch.records[-1].offset
                orders.write()
                outgoing = publish_windows(logic.fold(deltas), partition)
                tables.progress[progress_key] = progress.to_json()
            summary = ProgressUpdate(stream=name, partition=partition, **progress.to_json())
            outgoing.append(encode(summary))
            if failed:
                topic = batch.tp.topic
                await dead_letters.send(
                    [
                        Record(topic, partition, r.offset, r.key, r.value).dead_letter(
                            exc, f"dashboards.{name}"
                        )
                        for r, exc in failed
                    ]
                )
            if not declared:
                await topics.updates.maybe_declare()
                declared.append(True)
            for key, value in outgoing:
                await topics.updates.send(key=key, value=value)
            # Backpressure: let the changelog writes drain before the next batch piles on.
            await app.producer.buffer.wait_until_ebb()

        return take_batches

    def handle_order(change: ChangeEvent, progress: Progress, orders: OrderStates) -> Handled:
        if change.table != "orders":
            raise MalformedEvent(f"expected an orders change, got {change.table!r}")
        order_id = logic.order_id_of(change)
        out = logic.apply_order(orders.get(order_id), change, progress, lateness_ms)
        if out.state is not None:
            orders.put(order_id, out.state)
        return out.deltas, out.at_ms, out.dropped

    def handle_line(change: ChangeEvent, progress: Progress, orders: OrderStates) -> Handled:
        order_id = logic.order_id_of_line(change)
        category = tables.categories.get(str(change.row.get("product_id"))) or "uncategorised"
        out = logic.apply_line(orders.get(order_id), change, category, progress, lateness_ms)
        if out.state is not None:
            orders.put(order_id, out.state)
        return out.deltas, out.at_ms, out.dropped

    def handle_interaction(change: ChangeEvent, progress: Progress, _: OrderStates) -> Handled:
        if change.deleted or change.op not in ("c", "r"):
            return [], None, 0  # interactions are insert-only facts; nothing to correct
        at_ms, deltas = logic.interaction_deltas(change.row)
        if progress.is_late(at_ms, lateness_ms):
            return [], at_ms, 1
        return deltas, at_ms, 0

    app.batch_agent(topics.orders, LANE)(take("orders", handle_order))

    @app.agent(topics.order_items, name="dashboards-order-items")
    async def order_items(stream: StreamT) -> None:
        """Re-key each order line by its order id, into the partition of its order."""
        async for event in stream.events():
            try:
                change = decode_change(event.key, event.value)
                if change is None:
                    continue
                order_id = logic.order_id_of_line(change)
            except MalformedEvent as exc:
                await dead_letter(event, exc, "dashboards.order_items")
                continue
            await topics.order_lines.send(
                key=event.key,
                value=event.value,
                partition=order_key_partition(order_id, ds.source_partitions),
            )

    app.batch_agent(topics.order_lines, LANE)(take("order_lines", handle_line))
    app.batch_agent(topics.interactions, LANE)(take("interactions", handle_interaction))

    # The label this process last published per product. The updates topic is compacted, so
    # after a restart publishing each label once more is harmless.
    published: dict[str, tuple[str, str]] = {}

    async def products(batches: Sequence[Batch]) -> None:
        """Keep product -> category for the revenue split; publish names when they change.
        Only each product's newest change of the batches counts (a hot product's burst of
        price and stock changes costs one look)."""
        latest: dict[str, tuple[ChangeEvent, Batch]] = {}
        failed: list[DeadLetter] = []
        for batch in batches:
            for record in batch.records:
                try:
                    change = decode_change(record.key, record.value)
                    if change is None:
                        continue
                    product_id = str(change.key["id"])
                    if not change.deleted:
                        str(change.row["category"]), str(change.row["name"])
                except (MalformedEvent, KeyError) as exc:
                    failed.append(Record(batch.tp.topic, batch.tp.partition, record.offset,
                                         record.key, record.value).dead_letter(
                        MalformedEvent(str(exc)), "dashboards.products"))  # fmt: skip
                    continue
                kept = latest.get(product_id)
                if kept is None or change.lsn >= kept[0].lsn:
                    latest[product_id] = (change, batch)
        if failed:
            await dead_letters.send(failed)
        for product_id, (change, batch) in latest.items():
            if change.deleted:
                with writing_as(batch.last):
                    tables.categories.pop(product_id, None)
                published.pop(product_id, None)
                continue
            category, name = str(change.row["category"]), str(change.row["name"])
            if tables.categories.get(product_id) != category:
                with writing_as(batch.last):  # the table's partition is the product's
                    tables.categories[product_id] = category
            if published.get(product_id) == (name, category):
                continue  # a price or stock change: the label on the page is unchanged
            key, value = encode(LabelUpdate(id=product_id, name=name, category=category))
            await topics.updates.send(key=key, value=value)
            published[product_id] = (name, category)
            if len(published) > PUBLISHED_LABELS_MAX:
                del published[next(iter(published))]

    app.batch_agent(topics.products, LANE)(products)
    del order_items
    return Dashboards(topics=topics, tables=tables)
