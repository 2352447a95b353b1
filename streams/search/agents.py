"""Search indexing agents: every declared index's change topics into Elasticsearch, in bulk.

One agent per change topic, whatever number of indexes it feeds (as their rows, or as the
children of a summary): a batch is decoded once, planned for each use (`streams.search.logic`),
written, and dead-lettered once per failing use, naming it. Thin: take a batch, decode it, plan
it, write it, dead-letter what failed, then ack. Batches come from `noack_take(max, within)`: up
to `bulk_max_docs` records or whatever arrived within `bulk_max_wait_s`. Nothing is acked by
Faust itself; each batch's events are acked only after the writes returned (Elasticsearch
acknowledged every document: written, stale, or rejected) and its dead letters were delivered.
Faust commits only acked offsets, so after a crash the uncommitted tail is read again, and the
LSN versioning makes the replay harmless. (Plain `take()` would ack in a `finally`, even when
the batch was abandoned by a shutdown mid-write.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import faust

from headwater.settings import ElasticsearchSettings, KafkaSettings
from indexers.bulk import AsyncBulkWriter, BulkResult
from indexers.catalog import async_client, ensure_index_async
from indexers.declared import DeclaredIndex
from indexers.merge import AsyncMerger
from streams.common import RAW, DeadLetterSender, Record, decode_records
from streams.search.logic import Consumer, plan
from streams.settings import StreamsSettings
from streams.transport import App

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


def _origin(origin: Any) -> Record | None:
    """The Kafka record behind an action (a merge request carries it one level down)."""
    return origin if isinstance(origin, Record) else getattr(origin, "origin", None)


@dataclass
class SearchIndexing:
    """The search capability on one app: its writers (made on first use) and its counters."""

    es_settings: ElasticsearchSettings
    streams: StreamsSettings
    indexes: dict[str, DeclaredIndex]
    dead_letters: DeadLetterSender
    counters: Counters = field(default_factory=Counters)
    _writer: AsyncBulkWriter | None = None
    _mergers: dict[str, AsyncMerger] = field(default_factory=dict)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)

    def ready(self) -> bool:
        """Ready once every index exists behind its alias."""
        return self._writer is not None

    async def start(self) -> AsyncBulkWriter:
        """Make every index (behind its alias) and the writers, once for all the agents."""
        async with self._starting:
            return await self._start()

    async def _start(self) -> AsyncBulkWriter:
        if self._writer is None:
            es = async_client(self.es_settings)
            for index in self.indexes.values():
                await ensure_index_async(es, index.spec)
            writer = AsyncBulkWriter(es)
            for index in self.indexes.values():
                self._mergers[index.alias] = AsyncMerger(es, writer, index.shaper.declaration)
            self._writer = writer
        return self._writer

    async def index_batch(self, consumers: Sequence[Consumer], records: list[Record]) -> None:
        writer = self._writer or await self.start()
        decoded = decode_records(records)
        planned = plan(consumers, decoded.changes)
        result = await writer.write(planned.actions)
        for alias, requests in planned.merges.items():
            result.add(await self._mergers[alias].merge(alias, requests))
        letters = decoded.failures + planned.failures + _rejections(result)
        if letters:
            await self.dead_letters.send(letters)
        counters = self.counters
        counters.records += len(records)
        counters.tombstones += decoded.tombstones
        counters.malformed += len(decoded.failures) + len(planned.failures)
        counters.written += result.written
        counters.stale_skipped += result.stale
        counters.rejected += len(result.rejected)
        counters.batches += 1


def _rejections(result: BulkResult) -> list[Any]:
    letters = []
    for rejection in result.rejected:
        origin = _origin(rejection.action.origin)
        if origin is not None:
            letters.append(origin.dead_letter(rejection.reason, f"index:{rejection.action.index}"))
    return letters


def register(
    app: App,
    kafka: KafkaSettings,
    es_settings: ElasticsearchSettings,
    streams: StreamsSettings,
    indexes: dict[str, DeclaredIndex],
) -> SearchIndexing:
    """One agent per change topic the declared indexes read, a stats page and a log timer."""
    search = SearchIndexing(
        es_settings, streams, indexes, DeadLetterSender(app, kafka.dead_letter_topic)
    )
    for topic_name, consumers in consumers_by_topic(indexes).items():
        _agent(app, search, topic_name, consumers)

    @app.page("/search/stats/")
    async def search_stats(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json(asdict(search.counters))

    logged: dict[str, int] = {}

    @app.timer(interval=10.0)
    async def log_counters() -> None:
        now = asdict(search.counters)
        if now != logged:
            log.info("search indexing: %s", ", ".join(f"{k}={v}" for k, v in now.items()))
            logged.clear()
            logged.update(now)

    return search


def _agent(app: App, search: SearchIndexing, topic_name: str, consumers: list[Consumer]) -> None:
    topic = app.topic(topic_name, **RAW)
    streams = search.streams

    async def index(stream: faust.StreamT) -> None:
        assert isinstance(stream, faust.Stream)  # noack_take is not on the StreamT protocol
        await search.start()
        batches = stream.noack_take(streams.bulk_max_docs, streams.bulk_max_wait_s)
        async for events in batches:
            await search.index_batch(consumers, [Record.of_event(event) for event in events])
            for event in events:
                await stream.ack(event)

    app.agent(topic, name=f"search-index-{topic_name}")(index)
