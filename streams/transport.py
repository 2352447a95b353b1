"""Faust's Kafka transport: a short fetch wait, and no records lost to a seek during a fetch.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP


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


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A `faust.App` whose worker consumer waits at most `fetch_max_wait_ms` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
