"""Faust's Kafka transport: a short fetch wait, no records lost to a seek, and batch agents.

Fetch wait. Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and offers no
setting for it. aiokafka keeps one fetch in flight per broker, and that fetch leaves out the
partitions whose records are still being processed. On a one-broker stack, a change that
lands on such a partition waits for the in-flight fetch to come back, which on quiet topics
is the whole 1.5 s: most of our one-second freshness budget. A wait of `fetch_max_wait_ms`
(100 ms by default) costs a few empty fetches per second and bounds that delay.

Seek during a fetch. After a restart with table recovery, Faust resumes the stream partitions
and only then seeks them back to their committed offsets, while its fetcher is already
running. A batch fetched from the old positions can arrive after the seek: Faust delivers it
and moves its read offset ahead to that batch, so the records the seek re-fetches below that
offset are dropped as "already read". Any of them that was never delivered before the seek
(one cut off by the rebalance) is then lost for good, and the partition's commits stop at it.
`_Consumer` holds back every record of a fetch that overlapped such a seek and, once the seek
is over, reads those partitions again from the first held record (or from where the seek put
them, if that is further back), so nothing is skipped and at worst a record is read twice.

Batch agents. Faust hands a stream one message at a time: for each record its fetcher starts
four asyncio tasks (`wait_first`), builds a message and an event, decodes key and value, and
passes them through a queue, a stream and an ack. That is a fixed cost of the order of 100 us
per record on a small machine, whatever the agent does, and it caps a worker at a few thousand
records per second. An agent that folds records into aggregates, or writes them in bulk, does
not need them one by one: `App.batch_agent(topic, lane)` registers a handler that receives
batches (every record of one fetch of one partition, raw keys and values).

Lanes. The fetcher does not wait for batch agents: it hands each batch to the lane of every
agent reading its topic and goes on fetching. A lane is a queue with at most one task running
it; each run takes everything queued (up to `max_records`), calls each handler once with its
batches in arrival order (so a handler can write a hot row once for many changes, and one
partition's batches are never reordered), and acks a batch's offsets once every lane that got
it is done with it. So a capability that waits on a slow sink (search waits for Elasticsearch)
never holds up another (the dashboards), and the longer a sink takes, the more its next call
coalesces. A full lane makes the fetcher wait (backpressure). Before Faust commits on a
rebalance or a stop (`wait_empty`), every lane is drained. A handler's exception crashes the
app, as an agent's would. Faust's commit covers acked offsets as usual (after flushing the
producer). Everything else (subscription, assignment, table recovery, rebalancing, the seek
fence above) is Faust's, unchanged. Other topics still go to Faust's streams, one message at a
time, delivered one task per fetch instead of four per message.

Table writes from a batch agent. Faust picks a table write's changelog partition and RocksDB
partition database from the current event's message. A batch agent has no event, so its writes
are made "as" the last message of the partition's batch (`writing_as`).

This module is the one place that touches Faust's private members; `tests/unit/streams/
test_transport.py` pins the behaviour relied on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message, TopicT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify


@dataclass
class _Writing:
    """What Faust's tables read of the current event: its message (topic, partition)."""

    message: Message


@contextmanager
def writing_as(message: Message) -> Iterator[None]:
    """Write tables as if `message` were Faust's current event (see the module docstring)."""
    event = _Writing(message)  # held here: the context variable keeps only a weak reference
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher.
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


def held_back(records: Mapping[TP, list[Any]], held: dict[TP, int]) -> dict[TP, int]:
    """`held` with each partition's first offset in `records` added (the lowest one wins)."""
    out = dict(held)
    for tp, batch in records.items():
        if batch:
            out[tp] = min(out.get(tp, batch[0].offset), batch[0].offset)
    return out


def rewind_to(held: Mapping[TP, int], moved: Mapping[TP, int]) -> dict[TP, int]:
    """Where to read each held partition from: its first held record, or the seek's offset
    when the seek moved it further back."""
    return {tp: min(offset, moved.get(tp, offset)) for tp, offset in held.items()}


@dataclass(frozen=True)
class Batch:
    """The records of one partition from one fetch, in offset order, for a batch agent."""

    tp: TP
    records: Sequence[Any]  # aiokafka ConsumerRecords: .offset, .key, .value (raw bytes)
    last: Message  # the last record as a Faust message (tables take their partition from it)
    # When the fetcher handed it on (epoch ms, comparable with the records' Kafka timestamps).
    fetched_ms: float = field(default_factory=lambda: time.time() * 1000)


# A batch agent: called with the batches queued for it, oldest first (several per partition
# when its sink was slower than the fetches).
BatchHandler = Callable[[Sequence[Batch]], Awaitable[None]]

log = logging.getLogger(__name__)


@dataclass
class _Handoff:
    """One batch on its way through the lanes that read its topic; acked when all are done."""

    batch: Batch
    lanes: int
    ack: Callable[[TP, Sequence[int]], None]

    def done(self) -> None:
        self.lanes -= 1
        if self.lanes == 0:
            self.ack(self.batch.tp, [r.offset for r in self.batch.records])


def runs(queued: Sequence[tuple[BatchHandler, _Handoff]]) -> list[tuple[BatchHandler, list[Batch]]]:
    """Each handler once, with its batches in arrival order, handlers in order of first use."""
    grouped: dict[BatchHandler, list[Batch]] = {}
    for handler, handoff in queued:
        grouped.setdefault(handler, []).append(handoff.batch)
    return list(grouped.items())


@dataclass(eq=False)
class Lane:
    """The batch agents of one capability: a queue, and at most one task running it."""

    name: str
    app: faust.App
    max_records: int = 20_000
    _queue: deque[tuple[BatchHandler, _Handoff]] = field(default_factory=deque)
    _queued: int = 0
    _runner: asyncio.Task[None] | None = None
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _running: list[tuple[BatchHandler, _Handoff]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._room.set()
        self._idle.set()

    async def room(self) -> None:
        """Return when the lane takes more records (at once while it is below its bound)."""
        await self._room.wait()

    def put(self, handler: BatchHandler, handoff: _Handoff) -> None:
        self._queue.append((handler, handoff))
        self._queued += len(handoff.batch.records)
        if self._queued >= self.max_records:
            self._room.clear()
        if self._runner is None:
            self._idle.clear()
            self._runner = asyncio.ensure_future(self._run())

    def oldest_waiting_ms(self) -> float | None:
        """The Kafka timestamp (epoch ms) of the oldest record handed to this lane and not yet
        acked (queued or being handled); None when there is none."""
        stamps = [
            r.timestamp
            for _, handoff in (*self._running, *self._queue)
            for r in handoff.batch.records[:1]
            if r.timestamp > 0
        ]
        return min(stamps, default=None)

    async def drained(self) -> None:
        """Return once everything queued so far has been handled and acked."""
        await self._idle.wait()

    def _take(self) -> list[tuple[BatchHandler, _Handoff]]:
        taken: list[tuple[BatchHandler, _Handoff]] = []
        records = 0
        while self._queue and (not taken or records < self.max_records):
            item = self._queue.popleft()
            records += len(item[1].batch.records)
            taken.append(item)
        self._queued -= records
        if self._queued < self.max_records:
            self._room.set()
        return taken

    async def _run(self) -> None:
        try:
            while self._queue:
                taken = self._running = self._take()
                for handler, batches in runs(taken):
                    await handler(batches)
                for _, handoff in taken:
                    handoff.done()
                self._running = []
        except BaseException as exc:
            # Nothing queued is acked: it is read again from the last commit.
            self._queue.clear()
            self._queued = 0
            self._room.set()
            if not isinstance(exc, asyncio.CancelledError):  # a stop is no failure to log
                log.exception("batch agents of lane %s failed", self.name)
                await self.app.crash(exc)
            raise
        finally:
            self._running = []
            self._runner = None
            self._idle.set()


def unread(records: Sequence[Any], read_offset: int | None) -> Sequence[Any]:
    """The records at or after Faust's read offset of their partition (Faust's own filter)."""
    if read_offset is None or not records or records[0].offset >= read_offset:
        return records
    return [r for r in records if r.offset >= read_offset]


def gaps(previous: int | None, offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Offset ranges [start, end) absent between `previous` and `offsets` (compacted away, or
    transaction markers): Faust must know them, or its commits stop at the first one."""
    out: list[tuple[int, int]] = []
    for offset in offsets:
        if previous is not None and offset - previous > 1:
            out.append((previous + 1, offset))
        previous = offset
    return out


class _Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeking = 0  # seeks to committed offsets under way
        self._seeks_done = 0
        self._moved: dict[TP, int] = {}  # where the last seek put each partition it moved
        self._held: dict[TP, int] = {}  # first offset of the records held back, per partition

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        self._seeking += 1
        try:
            await super().perform_seek()
        finally:
            self._seeking -= 1
            self._seeks_done += 1

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # aiokafka moves only partitions with a committed offset above 0.
        self._moved = {tp: offset for tp, offset in committed.items() if offset and offset > 0}
        return committed

    async def _rewind(self) -> None:
        assigned = self.assignment()
        targets = {tp: o for tp, o in rewind_to(self._held, self._moved).items() if tp in assigned}
        self._held = {}
        self.log.info("reading again, after a seek: %s", sorted(targets.items()))
        await self.seek_wait(targets)
        for tp, offset in targets.items():
            self._read_offset[tp] = offset or None

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        if self._held and not self._seeking:
            await self._rewind()
        seeking, done = self._seeking, self._seeks_done
        records = await super()._getmany(active_partitions, timeout)
        if not (seeking or self._seeking or self._seeks_done != done):
            return records
        # This fetch overlapped a seek, so its records may come from before it: hold them
        # back; the next fetch after the seek is over first reads their partitions again from
        # the right place.
        self._held = held_back(records, self._held)
        return {}

    def ack_offsets(self, tp: TP, offsets: Sequence[int]) -> None:
        """`ack` for offsets a batch agent has taken (no message objects to mark)."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            index, acked = self._acked_index[tp], self._acked[tp]
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    self._n_acked += 1
            notify(self._waiting_for_ack)

    async def _hand_off(self, tp: TP, records: Sequence[Any]) -> None:
        """Queue a partition's fresh records on every lane reading its topic (waiting while one
        is full), then move the read offset past them."""
        app = cast(App, self.app)
        readers = app.batch_handlers[tp.topic]
        for lane, _ in readers:
            await lane.room()
        offsets = [r.offset for r in records]
        for start, end in gaps(self._read_offset[tp], offsets):
            await self._add_gap(tp, start, end)
        handoff = _Handoff(Batch(tp, records, self._to_message(tp, records[-1])), len(readers),
                           self.ack_offsets)  # fmt: skip
        for lane, handler in readers:
            lane.put(handler, handoff)
        self._read_offset[tp] = offsets[-1]
        # Faust's stall check reads this (as a stream's first event sets it): without it, it
        # reports every partition of a batch agent as never processed.
        self.app.monitor.stream_inbound_time[tp] = time.monotonic()

    async def wait_empty(self) -> None:
        """Faust's wait for streams to finish, after every lane has drained."""
        await cast(App, self.app).lanes_drained()
        await super().wait_empty()

    async def _deliver(self, records: Mapping[TP, list[Any]], generation_id: int) -> None:
        """One fetch: batch agents' partitions handed to their lanes, the rest message by
        message (Faust's `getmany` + `_drain_messages`, with the same read-offset filter and
        gap tracking)."""
        app = cast(App, self.app)
        handlers = app.batch_handlers
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        single: dict[TP, list[Any]] = {}
        for tp, batch in records.items():
            if tp.topic not in handlers:
                single[tp] = batch
                continue
            fresh = unread(batch, self._read_offset[tp])
            if fresh and self.flow_active and app.consumer_generation_id == generation_id:
                await self._hand_off(tp, fresh)
        if not single:
            return
        callback, to_message = self.callback, self._to_message
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        for tp, record in self.scheduler.iterate(single):
            if not self.flow_active or app.consumer_generation_id != generation_id:
                break
            since_yield += 1
            if since_yield > 100:
                await asyncio.sleep(0)
                since_yield = 0
            read = self._read_offset[tp]
            if read is not None and record.offset < read:
                continue
            if read and record.offset - read > 1 and acks_enabled_for(record.topic):
                await self._add_gap(tp, read + 1, record.offset)
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            await callback(to_message(tp, record))
            self._read_offset[tp] = record.offset

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        """Faust's fetch loop, one task per fetch: `_deliver` raced against a flow stop."""
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (self._stopped.is_set() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, _active = await self._wait_next_records(1.0)
                generation_id = self.app.consumer_generation_id
                await self.sleep(0)
                if records is not None and not self.should_stop:
                    if not self.flow_active:
                        await self.perform_seek()  # as Faust's getmany does
                    elif records:
                        await self.wait_first(
                            self._deliver(records, generation_id), self.suspend_flow.wait()
                        )
                self.diag.unset_flag(CONSUMER_FETCHING)
        except (*self.consumer_stopped_errors, asyncio.CancelledError):  # type: ignore[misc]
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A `faust.App` whose worker consumer waits at most `fetch_max_wait_ms` per fetch, and
    which takes batch agents."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # topic -> every (lane, batch agent) reading it
        self.batch_handlers: dict[str, list[tuple[Lane, BatchHandler]]] = {}
        self.lanes: dict[str, Lane] = {}
        self._batch_channels: list[TopicT] = []
        super().__init__(*args, **kwargs)

    def consumed_topics(self) -> tuple[set[str], set[str]]:
        """(every topic the app's agents and batch agents read, the internal ones among them)."""
        channels = [agent.channel for agent in self.agents.values()] + self._batch_channels
        topics = {t for channel in channels for t in channel.topics}
        internal = {t for channel in channels if channel.internal for t in channel.topics}
        return topics, internal

    async def declare_internal(self) -> None:
        """Create the internal topics the app reads (re-keyed order lines, redrives), so that
        their start can be pinned before anything is written to them."""
        channels = [agent.channel for agent in self.agents.values()] + self._batch_channels
        for channel in channels:
            if channel.internal:
                await cast(Any, channel).maybe_declare()

    def positions(self) -> dict[tuple[str, int], tuple[int | None, int | None]]:
        """(last committed offset, high watermark as last fetched) of each assigned partition
        of a batch agent's topic; empty before the consumer starts."""
        consumer = cast(_Consumer | None, self._consumer)
        if consumer is None:
            return {}
        committed = consumer._committed_offset  # Faust's own record of what it committed
        try:
            return {
                (tp.topic, tp.partition): (committed.get(tp), consumer.highwater(tp))
                for tp in consumer.assignment()
                if tp.topic in self.batch_handlers
            }
        except ConsumerNotStarted:
            return {}

    def oldest_waiting_ms(self) -> float | None:
        """The Kafka timestamp of the oldest record any lane holds and has not acked."""
        return min(
            (ms for lane in self.lanes.values() if (ms := lane.oldest_waiting_ms()) is not None),
            default=None,
        )

    def lane(self, name: str, max_records: int = 20_000) -> Lane:
        """The lane `name`, made on first use."""
        if name not in self.lanes:
            self.lanes[name] = Lane(name, self, max_records)
        return self.lanes[name]

    async def lanes_drained(self) -> None:
        for lane in list(self.lanes.values()):
            await lane.drained()

    def batch_agent(
        self, topic: TopicT, lane: str = "default"
    ) -> Callable[[BatchHandler], BatchHandler]:
        """Subscribe to `topic` and hand its batches to the handler, run in lane `lane`."""

        def register(handler: BatchHandler) -> BatchHandler:
            runner = self.lane(lane)
            for name in topic.topics:
                readers = self.batch_handlers.setdefault(name, [])
                if any(h is handler for _, h in readers):
                    raise ValueError(f"topic {name} already has this batch agent")
                if any(agent.channel is not None and name in agent.channel.topics
                       for agent in self.agents.values()):  # fmt: skip
                    raise ValueError(f"topic {name} is read by a stream agent")
                readers.append((runner, handler))
            self._batch_channels.append(topic)
            self.topics.add(topic)
            return handler

        return register

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
