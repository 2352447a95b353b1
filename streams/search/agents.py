"""Search indexing: every declared index's change topics into Elasticsearch, in bulk.

One batch agent (`streams.transport`) reads every change topic the declared indexes read (as
their rows, or as the children of a summary), in its own lane, so it never holds up the
dashboards while it waits for Elasticsearch, and whatever arrived meanwhile comes in its next
call. A call decodes each topic's records once, plans them for every use of that topic
(`streams.search.logic`), and writes all of it together: a hot document changed many times,
by its row and by its children, across partitions and fetches, costs one write. Thin: decode,
plan, write, dead-letter what failed (once per failing use, naming it: `search:<index>` for an
index's rows, `search:<index>.<summary>` for a summary's children). The transport acks the
records only after this returns, that is after Elasticsearch acknowledged every document
(written, stale, or rejected) and the dead letters were delivered; Faust commits only acked
offsets, so after a crash the uncommitted tail is read again, and the LSN versioning makes the
replay harmless. For the same reason a dead letter redriven to one use (`streams.deadletters`)
is planned for that use alone and written with the same versions: a change older than what the
index holds is a 409, skipped, so a redrive never overwrites newer data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import faust
from elasticsearch import AsyncElasticsearch

from headwater.resilience import Breaker, DeadLetter
from headwater.settings import ElasticsearchSettings, KafkaSettings
from indexers.bulk import AsyncBulkWriter, BulkResult
from indexers.catalog import async_client, ensure_index_async
from indexers.declared import DeclaredIndex
from indexers.merge import AsyncMerger, MergeRequest
from streams.common import RAW, DeadLetterSender, Record, decode_records
from streams.deadletters.agents import Redrive, RedriveHandler
from streams.latency import Histogram
from streams.search.logic import Consumer, Origin, Planned, plan
from streams.settings import StreamsSettings
from streams.transport import App, Batch

# The search batch agent's lane: its waits on Elasticsearch hold up no other capability.
LANE = "search"

log = logging.getLogger(__name__)


@dataclass
class Counters:
    records: int = 0
    tombstones: int = 0
    malformed: int = 0
    written: int = 0
    stale_skipped: int = 0
    rejected: int = 0
    batches: int = 0


def consumers_by_topic(indexes: dict[str, DeclaredIndex]) -> dict[str, list[Consumer]]:
    """Each change topic with every use the declared indexes make of it."""
    out: dict[str, list[Consumer]] = {}
    for index in indexes.values():
        out.setdefault(index.topic, []).append(Consumer(index.shaper, index.alias))
        for summary, topic in index.child_topics.items():
            out.setdefault(topic, []).append(Consumer(index.shaper, index.alias, summary))
    return out


def _origins(origin: Any) -> tuple[Origin, ...]:
    """The records behind an action, with their consumers (a merge request carries them one
    level down)."""
    if isinstance(origin, MergeRequest):
        origin = origin.origin
    return origin if isinstance(origin, tuple) else ()


@dataclass
class SearchIndexing:
    """The search capability on one app: its writers (made on first use) and its counters."""

    es_settings: ElasticsearchSettings
    streams: StreamsSettings
    indexes: dict[str, DeclaredIndex]
    dead_letters: DeadLetterSender
    counters: Counters = field(default_factory=Counters)
    consumers: dict[str, list[Consumer]] = field(default_factory=dict)
    # Milliseconds from each record's Kafka timestamp to its hand-off and to its acknowledgement.
    stages: dict[str, Histogram] = field(
        default_factory=lambda: {"fetched": Histogram(), "acked": Histogram()}
    )
    # Every call this worker makes to Elasticsearch goes through it.
    breaker: Breaker = field(default_factory=lambda: Breaker("elasticsearch"))
    _writer: AsyncBulkWriter | None = None
    _es: AsyncElasticsearch | None = None
    _mergers: dict[str, AsyncMerger] = field(default_factory=dict)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)

    def ready(self) -> bool:
        """Ready once every index exists behind its alias."""
        return self._writer is not None

    def breakers(self) -> dict[str, dict[str, object]]:
        return {self.breaker.name: self.breaker.report()}

    def breaker_reason(self) -> str:
        return f"circuit open after repeated failures; trial in {self.breaker.retry_in_s():.0f} s"

    async def start(self) -> AsyncBulkWriter:
        """Make every index (behind its alias) and the writers, once for all the agents."""
        async with self._starting:
            return await self._start()

    async def _start(self) -> AsyncBulkWriter:
        if self._writer is None:
            es = self._es = async_client(self.es_settings)
            for index in self.indexes.values():
                await ensure_index_async(es, index.spec)
            writer = AsyncBulkWriter(es, breaker=self.breaker)
            for index in self.indexes.values():
                self._mergers[index.alias] = AsyncMerger(es, writer, index.shaper.declaration)
            self._writer = writer
        return self._writer

    async def close(self) -> None:
        """Close the Elasticsearch client (its connections), once nothing is written any more."""
        if self._es is not None:
            await self._es.close()
            self._es = self._writer = None

    def _merged_aliases(self, topic: str) -> set[str]:
        """The aliases whose documents `topic`'s changes are merged into (summaries)."""
        return {c.alias for c in self.consumers.get(topic, []) if c.shaper.declaration.summaries}

    async def index_batches(self, batches: Sequence[Batch]) -> None:
        """Write what one call of the batch agent got: batches of any of its topics."""
        per_topic: dict[str, list[Record]] = {}
        for batch in batches:
            topic, partition = batch.tp.topic, batch.tp.partition
            per_topic.setdefault(topic, []).extend(
                Record(topic, partition, r.offset, r.key, r.value) for r in batch.records
            )
        await self.index_records(per_topic)
        acked_ms = time.time() * 1000
        fetched, acked = self.stages["fetched"], self.stages["acked"]
        for batch in batches:
            for r in batch.records:
                if r.timestamp > 0:
                    fetched.observe(batch.fetched_ms - r.timestamp)
                    acked.observe(acked_ms - r.timestamp)

    async def index_records(self, per_topic: dict[str, list[Record]]) -> None:
        letters = await self.write_records(per_topic)
        if letters:
            await self.dead_letters.send(letters)

    def redriver(self, consumer: str) -> RedriveHandler:
        """Records redriven to `consumer`: written for it alone; the letters of what failed
        again are returned (the redrive sends them)."""

        async def redrive(records: Sequence[Record], last: Any) -> list[DeadLetter]:
            per_topic: dict[str, list[Record]] = {}
            for record in records:
                per_topic.setdefault(record.topic, []).append(record)
            return await self.write_records(per_topic, only=consumer)

        return redrive

    async def write_records(
        self, per_topic: dict[str, list[Record]], only: str | None = None
    ) -> list[DeadLetter]:
        """Write the records for every consumer of their topics (or for consumer `only`), and
        return the dead letters of what failed."""
        writer = self._writer or await self.start()
        # Which index each merged alias points to is asked while the records are planned.
        concrete = {
            alias: asyncio.create_task(self._mergers[alias].concrete(alias))
            for topic in per_topic
            for alias in self._merged_aliases(topic)
        }
        planned, letters = Planned(), []
        tombstones = records = 0
        for topic, topic_records in per_topic.items():
            consumers = [c for c in self.consumers.get(topic, []) if only in (None, c.id)]
            if not consumers and only is not None:
                letters += [
                    r.dead_letter(f"{only} does not read {topic} any more", "route", only)
                    for r in topic_records
                ]
                continue
            decoded = decode_records(topic_records)
            planned.add(plan(consumers, decoded.changes))
            letters += decoded.letters(c.id for c in consumers)
            tombstones += decoded.tombstones
            records += len(topic_records)
        malformed = len(letters) + len(planned.failures)

        async def merge(alias: str, requests: list[MergeRequest]) -> BulkResult:
            resolved = await concrete[alias] if alias in concrete else None
            return await self._mergers[alias].merge(alias, requests, resolved)

        # Plain writes and each index's merges touch different documents: all at once.
        results = await asyncio.gather(
            writer.write(planned.actions),
            *(merge(alias, requests) for alias, requests in planned.merges.items()),
            *(task for alias, task in concrete.items() if alias not in planned.merges),
        )
        result = BulkResult()
        for part in results:
            if isinstance(part, BulkResult):
                result.add(part)
        letters += planned.failures + _rejections(result)
        counters = self.counters
        counters.records += records
        counters.tombstones += tombstones
        counters.malformed += malformed
        counters.written += result.written
        counters.stale_skipped += result.stale
        counters.rejected += len(result.rejected)
        counters.batches += 1
        return letters


def _rejections(result: BulkResult) -> list[DeadLetter]:
    """A letter for every record of every rejected write, naming its consumer."""
    return [
        origin.dead_letter(rejection.reason, f"index:{rejection.action.index}")
        for rejection in result.rejected
        for origin in _origins(rejection.action.origin)
    ]


def register(
    app: App,
    kafka: KafkaSettings,
    es_settings: ElasticsearchSettings,
    streams: StreamsSettings,
    indexes: dict[str, DeclaredIndex],
    redrive: Redrive | None = None,
) -> SearchIndexing:
    """One agent per change topic the declared indexes read, a stats page and a log timer;
    each use of a topic takes the dead letters redriven to it."""
    consumers = consumers_by_topic(indexes)
    search = SearchIndexing(
        es_settings, streams, indexes, DeadLetterSender(app, kafka.dead_letter_topic),
        consumers=consumers,
    )  # fmt: skip
    if consumers:
        topic = app.topic(*consumers, **RAW)
        app.lane(LANE, max_records=streams.bulk_max_docs)
        app.batch_agent(topic, LANE)(search.index_batches)
        for uses in consumers.values():
            for consumer in uses:
                if redrive is not None:
                    redrive.add(consumer.id, search.redriver(consumer.id))

        @app.task
        async def make_indexes() -> None:
            """Every index behind its alias before the first batch (readiness waits for it)."""
            await search.start()

        async def close_client(sender: Any, *args: Any, **kwargs: Any) -> None:
            """After the consumer stopped (the lanes drained): no write is left to make."""
            await search.close()

        # Faust's receiver type is narrower than any function mypy can match to it.
        app.on_before_shutdown.connect(cast(Any, close_client))

    @app.page("/search/stats/")
    async def search_stats(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        stages = {name: h.snapshot() for name, h in search.stages.items()}
        return view.json({**asdict(search.counters), "stages_ms": stages})

    logged: dict[str, int] = {}

    @app.timer(interval=10.0)
    async def log_counters() -> None:
        now = asdict(search.counters)
        if now != logged:
            log.info("search indexing: %s", ", ".join(f"{k}={v}" for k, v in now.items()))
            logged.clear()
            logged.update(now)

    return search
