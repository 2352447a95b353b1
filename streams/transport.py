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
`_Consumer` discards, for the partitions a seek repositioned, every record of a fetch that was
under way when the seek finished, and seeks those partitions to the same offset again, so
they are read exactly from where the seek put them.
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


def raced(records: Mapping[TP, list[Any]], seeks: list[dict[TP, int]]) -> dict[TP, int]:
    """The partitions of a fetch that the given seeks moved, each with where it was moved to."""
    moved: dict[TP, int] = {}
    for seek in seeks:
        moved.update(seek)
    return {tp: moved[tp] for tp, batch in records.items() if tp in moved and batch}


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One entry per finished seek-to-committed: the partitions it moved and where to.
        self._seeks: list[dict[TP, int]] = []

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # aiokafka moves only partitions with a committed offset above 0.
        moved = {tp: offset for tp, offset in committed.items() if offset and offset > 0}
        self._seeks.append(moved)
        return committed

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        seeks = self._seeks
        before = len(seeks)
        records = await super()._getmany(active_partitions, timeout)
        if len(seeks) == before:
            return records
        stale = raced(records, seeks[before:])
        del seeks[:]
        if stale:
            self.log.info("discarding a fetch that raced a seek: %s", sorted(stale))
            await self.seek_wait(stale)
        return {tp: batch for tp, batch in records.items() if tp not in stale}


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A `faust.App` whose worker consumer waits at most `fetch_max_wait_ms` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
