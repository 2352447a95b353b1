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

Dead letters name their consumer (`dashboards:<stream>`, e.g. `dashboards:interactions`) and
stage (`decode`, or `handle` for a change of the wrong shape). Each consumer takes the letters
redriven to it (`streams.deadletters`) through the same fold as its live records, without the
partition's offset check (a redriven record is older than the progress by definition) and
without moving the progress offset: a change to an order, a line or a product counts only if
its LSN is newer than the one the tables hold, and the redrive's mark keeps an interaction from
counting twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import StreamT

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
from streams.deadletters.agents import Redrive, RedriveHandler
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


# Ids per seen-facts entry: an entry is one changelog message, which must stay well under
# Kafka's 1 MB message limit even for long keys (a fetch of small records can hold 20,000).
SEEN_PER_ENTRY = 5_000


class SeenFacts:
    """The insert-only facts one partition has counted within the allowed lateness, so that a
    copy of one (`Progress.may_repeat`: sent again by Debezium after a crash, re-read by a new
    snapshot) counts nothing.

    Each batch that counts facts writes one entry (one per `SEEN_PER_ENTRY` ids), key
    `<partition>/<n>`, value `{"until_ms": the latest event time in it, "ids": [...]}`,
    numbered from `Progress.seen_next`; entries whose facts are all late now (until_ms before
    the horizon) are deleted from the oldest, `Progress.seen_first`. The live path only
    writes: the entries are read when a change may be a copy, and kept per process
    (`SeenCache`) while the partition's progress moves on from where they were read. A batch
    folded again after a crash rewrites its entries under the same numbers, as progress was
    not written. Memory: the ids of the allowed lateness (120 s) of a partition's facts, in
    the worker's store; read into the process only while copies come."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        partition: int,
        progress: Progress,
        cache: SeenCache,
    ) -> None:
        self.table = table
        self.partition = partition
        self.progress = progress
        self.cache = cache
        self.added: dict[str, int] = {}  # counted in this batch: id -> event time
        self.loaded: dict[int, frozenset[str]] | None = None

    def _key(self, n: int) -> str:
        return f"{self.partition}/{n}"

    def counted(self, fact: str) -> bool:
        if fact in self.added:
            return True
        if self.loaded is None:
            first, after = self.progress.seen_first, self.progress.seen_next
            kept = self.cache.entries(self.partition, self.progress.offset)
            self.loaded = {n: ids for n, ids in kept.items() if first <= n < after}
            for n in range(first, after):
                if n not in self.loaded:
                    entry = self.table.get(self._key(n))
                    self.loaded[n] = frozenset(entry["ids"] if entry else ())
        return any(fact in ids for ids in self.loaded.values())

    def add(self, fact: str, at_ms: int) -> None:
        self.added[fact] = at_ms

    def write(self, horizon_ms: int, offset: int) -> None:
        """Write this batch's entry and delete the ones wholly before `horizon_ms`; `offset` is
        where the partition's progress now stands."""
        progress = self.progress
        added = list(self.added.items())
        for start in range(0, len(added), SEEN_PER_ENTRY):
            chunk = added[start : start + SEEN_PER_ENTRY]
            n = progress.seen_next
            ids = [fact for fact, _ in chunk]
            self.table[self._key(n)] = {"until_ms": max(at for _, at in chunk), "ids": ids}
            progress.seen_next = n + 1
            if self.loaded is not None:
                self.loaded[n] = frozenset(ids)
        while progress.seen_first < progress.seen_next:
            key = self._key(progress.seen_first)
            entry = self.table.get(key)
            if entry is not None and entry["until_ms"] >= horizon_ms:
                break
            if entry is not None:
                del self.table[key]
            if self.loaded is not None:
                self.loaded.pop(progress.seen_first, None)
            progress.seen_first += 1
        self.cache.keep(self.partition, offset, self.loaded)


class SeenCache:
    """The seen-fact entries a process read, per partition, while a run of batches looks them
    up; valid while the partition's progress offset is the one they were kept at (another
    worker may have moved it since)."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[int, dict[int, frozenset[str]]]] = {}

    def entries(self, partition: int, offset: int) -> dict[int, frozenset[str]]:
        kept = self._kept.pop(partition, None)
        return kept[1] if kept is not None and kept[0] == offset else {}

    def keep(self, partition: int, offset: int, loaded: dict[int, frozenset[str]] | None) -> None:
        """Keep what a batch read and updated; a batch that read nothing ends the keeping
        (copies come in runs: a resent stretch, a snapshot), which frees the memory."""
        if loaded is None:
            self._kept.pop(partition, None)
        else:
            self._kept[partition] = (offset, loaded)


@dataclass
class PartitionBatch:
    """What the handlers of one partition's batch read and write besides the windows."""

    orders: OrderStates
    facts: SeenFacts


Handler = Callable[[ChangeEvent, Progress, PartitionBatch], Handled]


@dataclass
class Dashboards:
    """What `register` declared on the app (tests and the benchmark look at it)."""

    topics: Topics
    tables: Tables


def consumer_id(stream: str) -> str:
    """A dashboards consumer's name in dead letters."""
    return f"dashboards:{stream}"


def category_of(value: Any) -> tuple[str | None, int]:
    """(category, LSN of the change it came from) of a categories table value: `[category,
    lsn]`, a deleted product's `[null, lsn]`, or a bare category written before LSNs were kept."""
    if isinstance(value, list):
        return value[0], int(value[1])
    return (None, 0) if value is None else (str(value), 0)


def register(
    app: App, kafka: KafkaSettings, ds: DashboardSettings, redrive: Redrive | None = None
) -> Dashboards:
    """Declare the dashboards' topics, tables and agents on `app` (and their redrive handlers
    on `redrive`)."""
    topics = declare_topics(app, kafka, ds)
    tables = declare_tables(app, ds)
    lateness_ms = int(ds.allowed_lateness_s * 1000)
    dead_letters = DeadLetterSender(app, kafka.dead_letter_topic)

    def redriven(stream: str, handler: RedriveHandler) -> None:
        if redrive is not None:
            redrive.add(consumer_id(stream), handler)

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

    async def publish(outgoing: list[tuple[bytes, bytes]]) -> None:
        if not declared:
            await topics.updates.maybe_declare()
            declared.append(True)
        for key, value in outgoing:
            await topics.updates.send(key=key, value=value)
        # Backpressure: let the changelog writes drain before the next batch piles on.
        await app.producer.buffer.wait_until_ebb()

    def take(name: str, handle: Handler) -> Callable[[Sequence[Batch]], Any]:
        """The batch agent of one stream: each partition's batch in turn (`take_batch`); and
        its redrive handler."""
        consumer = consumer_id(name)
        seen = SeenCache()

        async def take_batches(batches: Sequence[Batch]) -> None:
            for batch in batches:
                await take_batch(batch)

        async def take_batch(batch: Batch) -> None:
            topic, partition = batch.tp.topic, batch.tp.partition
            outgoing, failed = fold(topic, partition, batch.records, batch.last, live=True)
            if failed:
                await dead_letters.send(failed)
            await publish(outgoing)

        async def redrive_records(records: Sequence[Record], last: Any) -> list[DeadLetter]:
            failed: list[DeadLetter] = []
            per_partition: dict[tuple[str, int], list[Record]] = {}
            for record in records:
                per_partition.setdefault((record.topic, record.partition), []).append(record)
            for (topic, partition), some in per_partition.items():
                outgoing, again = fold(topic, partition, some, last, live=False)
                failed += again
                await publish(outgoing)
            return failed

        def fold(
            topic: str, partition: int, records: Sequence[Any], last: Any, live: bool
        ) -> tuple[list[tuple[bytes, bytes]], list[DeadLetter]]:
            """Decode, handle and fold a partition's records and write the tables: the
            changed windows and the progress to publish, and the letters of what failed. Live
            records below the partition's progress offset were folded in already; redriven
            ones are older by definition and leave the offset where it is."""
            progress_key = f"{name}#{partition}"
            failed: list[DeadLetter] = []

            def letter(record: Any, error: Exception, stage: str) -> DeadLetter:
                origin = (
                    record
                    if isinstance(record, Record)
                    else Record(topic, partition, record.offset, record.key, record.value)
                )
                return origin.dead_letter(error, stage, consumer)

            with writing_as(last):
                progress = Progress.from_json(tables.progress.get(progress_key))
                state = PartitionBatch(
                    OrderStates(tables.order_state, partition),
                    SeenFacts(tables.seen_facts, partition, progress, seen),
                )
                deltas: list[Delta] = []
                for record in records:
                    if live and record.offset <= progress.offset:
                        continue  # folded in before a restart; delivered again since
                    try:
                        change = decode_change(record.key, record.value)
                    except MalformedEvent as exc:
                        failed.append(letter(record, exc, "decode"))
                        continue
                    if change is None:  # tombstone: compaction's business, not ours
                        continue
                    try:
                        new, at_ms, dropped = handle(change, progress, state)
                    except (MalformedEvent, KeyError, TypeError, ValueError) as exc:
                        # A row of the wrong shape.
                        error = exc if isinstance(exc, MalformedEvent) else MalformedEvent(
                            f"{type(exc).__name__}: {exc}")  # fmt: skip
                        failed.append(letter(record, error, "handle"))
                        continue
                    progress.note(change, at_ms, dropped)
                    deltas.extend(new)
                if live:
                    progress.offset = records[-1].offset
                state.orders.write()
                state.facts.write(progress.horizon_ms(lateness_ms), progress.offset)
                outgoing = publish_windows(logic.fold(deltas), partition)
                tables.progress[progress_key] = progress.to_json()
            summary = ProgressUpdate(stream=name, partition=partition, **progress.published())
            outgoing.append(encode(summary))
            return outgoing, failed

        redriven(name, redrive_records)
        return take_batches

    def handle_order(change: ChangeEvent, progress: Progress, state: PartitionBatch) -> Handled:
        orders = state.orders
        if change.table != "orders":
            raise MalformedEvent(f"expected an orders change, got {change.table!r}")
        order_id = logic.order_id_of(change)
        out = logic.apply_order(orders.get(order_id), change, progress, lateness_ms)
        if out.state is not None:
            orders.put(order_id, out.state)
        return out.deltas, out.at_ms, out.dropped

    def handle_line(change: ChangeEvent, progress: Progress, state: PartitionBatch) -> Handled:
        orders = state.orders
        order_id = logic.order_id_of_line(change)
        category = category_of(tables.categories.get(str(change.row.get("product_id"))))[0]
        category = category or "uncategorised"
        out = logic.apply_line(orders.get(order_id), change, category, progress, lateness_ms)
        if out.state is not None:
            orders.put(order_id, out.state)
        return out.deltas, out.at_ms, out.dropped

    def handle_interaction(
        change: ChangeEvent, progress: Progress, state: PartitionBatch
    ) -> Handled:
        if change.deleted or change.op not in ("c", "r"):
            return [], None, 0  # interactions are insert-only facts; nothing to correct
        at_ms, deltas = logic.interaction_deltas(change.row)
        if progress.is_late(at_ms, lateness_ms):
            return [], at_ms, 1
        fact = logic.fact_id(change.key)
        if progress.may_repeat(change) and state.facts.counted(fact):
            return [], at_ms, 0  # a copy: resent after a Connect crash, or a new snapshot's
        state.facts.add(fact, at_ms)
        return deltas, at_ms, 0

    app.batch_agent(topics.orders, LANE)(take("orders", handle_order))

    order_items_consumer = consumer_id("order_items")

    def order_line_of(record: Any) -> tuple[int, int] | None:
        """(order id, its partition) of an order line, None for a tombstone; raises
        MalformedEvent for a record that is no order line."""
        change = decode_change(record.key, record.value)
        if change is None:
            return None
        order_id = logic.order_id_of_line(change)
        return order_id, order_key_partition(order_id, ds.source_partitions)

    @app.agent(topics.order_items, name="dashboards-order-items")
    async def order_items(stream: StreamT) -> None:
        """Re-key each order line by its order id, into the partition of its order."""
        async for event in stream.events():
            try:
                line = order_line_of(event)
            except MalformedEvent as exc:
                letter = Record.of_event(event).dead_letter(exc, "decode", order_items_consumer)
                await dead_letters.send([letter])
                continue
            if line is not None:
                await topics.order_lines.send(key=event.key, value=event.value, partition=line[1])

    async def redrive_order_items(records: Sequence[Record], last: Any) -> list[DeadLetter]:
        """Redriven order lines go where live ones go: to their order's partition (folded
        there like any line, newer LSN only)."""
        failed = []
        for record in records:
            try:
                line = order_line_of(record)
            except MalformedEvent as exc:
                failed.append(record.dead_letter(exc, "decode", order_items_consumer))
                continue
            if line is not None:
                await topics.order_lines.send(key=record.key, value=record.value, partition=line[1])
        return failed

    redriven("order_items", redrive_order_items)

    app.batch_agent(topics.order_lines, LANE)(take("order_lines", handle_line))
    app.batch_agent(topics.interactions, LANE)(take("interactions", handle_interaction))

    # The label this process last published per product. The updates topic is compacted, so
    # after a restart publishing each label once more is harmless.
    published: dict[str, tuple[str, str]] = {}

    products_consumer = consumer_id("products")

    async def products(batches: Sequence[Batch]) -> None:
        """Keep product -> category for the revenue split; publish names when they change."""
        records = [
            (Record(b.tp.topic, b.tp.partition, r.offset, r.key, r.value), b.last)
            for b in batches
            for r in b.records
        ]
        failed = await take_products(records)
        if failed:
            await dead_letters.send(failed)

    async def redrive_products(records: Sequence[Record], last: Any) -> list[DeadLetter]:
        return await take_products([(record, last) for record in records])

    async def take_products(records: Sequence[tuple[Record, Any]]) -> list[DeadLetter]:
        """Only each product's newest change counts (a hot product's burst of price and stock
        changes costs one look), and only if it is newer than the one the table holds (a
        redriven change may be older)."""
        latest: dict[str, tuple[ChangeEvent, Any]] = {}
        failed: list[DeadLetter] = []
        for record, last in records:
            try:
                change = decode_change(record.key, record.value)
            except MalformedEvent as exc:
                failed.append(record.dead_letter(exc, "decode", products_consumer))
                continue
            if change is None:
                continue
            try:
                product_id = str(change.key["id"])
                if not change.deleted:
                    str(change.row["category"]), str(change.row["name"])
            except KeyError as exc:
                error = MalformedEvent(f"KeyError: {exc}")
                failed.append(record.dead_letter(error, "handle", products_consumer))
                continue
            kept = latest.get(product_id)
            if kept is None or change.lsn >= kept[0].lsn:
                latest[product_id] = (change, last)
        for product_id, (change, last) in latest.items():
            held, held_lsn = category_of(tables.categories.get(product_id))
            if change.lsn < held_lsn:
                continue  # older than what the table holds: a redrive of an old change
            if change.deleted:
                with writing_as(last):  # a marker, so an older change cannot bring it back
                    tables.categories[product_id] = [None, change.lsn]
                published.pop(product_id, None)
                continue
            category, name = str(change.row["category"]), str(change.row["name"])
            if (held, held_lsn) != (category, change.lsn):
                with writing_as(last):  # the table's partition is the product's
                    tables.categories[product_id] = [category, change.lsn]
            if published.get(product_id) == (name, category):
                continue  # a price or stock change: the label on the page is unchanged
            key, value = encode(LabelUpdate(id=product_id, name=name, category=category))
            await topics.updates.send(key=key, value=value)
            published[product_id] = (name, category)
            if len(published) > PUBLISHED_LABELS_MAX:
                del published[next(iter(published))]
        return failed

    redriven("products", redrive_products)
    app.batch_agent(topics.products, LANE)(products)
    del order_items
    return Dashboards(topics=topics, tables=tables)
