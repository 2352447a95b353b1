"""Search indexing agents: products and reviews change topics into Elasticsearch, in bulk.

Thin: take a batch, decode it, plan it (`streams.search.logic`), write it, dead-letter what
failed, then ack. Batches come from `noack_take(max, within)`: up to `bulk_max_docs` records or
whatever arrived within `bulk_max_wait_s`. Nothing is acked by Faust itself; each batch's events
are acked only after `AsyncBulkWriter.write` has returned (Elasticsearch acknowledged every
document: written, stale, or rejected) and its dead letters were delivered. Faust commits only
acked offsets, so after a crash the uncommitted tail is read again, and the LSN versioning
makes the replay harmless. (Plain `take()` would ack in a `finally`, even when the batch was
abandoned by a shutdown mid-write.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import faust

from indexers.bulk import AsyncBulkWriter
from indexers.catalog import async_client, ensure_index_async, spec
from indexers.merge import AsyncProductMerger
from streams.app import app, es_settings, kafka_settings, readiness, streams_settings
from streams.common import RAW, DeadLetterSender, Record, decode_records
from streams.search.logic import Change, Planned, plan_products, plan_reviews

log = logging.getLogger(__name__)

PRODUCTS = spec("products", streams_settings.index_prefix)
REVIEWS = spec("reviews", streams_settings.index_prefix)


@dataclass
class Counters:
    records: int = 0
    tombstones: int = 0
    malformed: int = 0
    written: int = 0
    stale_skipped: int = 0
    rejected: int = 0
    batches: int = 0


counters = Counters()
_state: dict[str, Any] = {}


# Ready once both indexes exist behind their aliases.
readiness.append(lambda: "writer" in _state)


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, **RAW)


products_topic = _raw_topic(kafka_settings.cdc_topic("products"))
reviews_topic = _raw_topic(kafka_settings.cdc_topic("reviews"))
dead_letters = DeadLetterSender(app, kafka_settings.dead_letter_topic)


async def _writers() -> tuple[AsyncBulkWriter, AsyncProductMerger]:
    if "writer" not in _state:
        es = async_client(es_settings)
        for index in (PRODUCTS, REVIEWS):
            await ensure_index_async(es, index)
        writer = AsyncBulkWriter(es)
        _state["writer"], _state["merger"] = writer, AsyncProductMerger(es, writer)
    return _state["writer"], _state["merger"]


def _origin(origin: Any) -> Any:
    """The Kafka record behind an action (a merge request carries it one level down)."""
    return origin if isinstance(origin, Record) else getattr(origin, "origin", None)


async def _index(stream: faust.StreamT, plan: Callable[[Sequence[Change]], Planned]) -> None:
    writer, merger = await _writers()
    assert isinstance(stream, faust.Stream)  # noack_take is not on the StreamT protocol
    batches = stream.noack_take(streams_settings.bulk_max_docs, streams_settings.bulk_max_wait_s)
    async for events in batches:
        records = [Record.of_event(event) for event in events]
        decoded = decode_records(records)
        planned = plan(decoded.changes)
        result = await writer.write(planned.actions)
        result.add(await merger.merge(PRODUCTS.alias, planned.merges))
        letters = decoded.failures + planned.failures
        letters += [
            _origin(rejection.action.origin).dead_letter(rejection.reason, "index")
            for rejection in result.rejected
            if _origin(rejection.action.origin) is not None
        ]
        if letters:
            await dead_letters.send(letters)
        counters.records += len(records)
        counters.tombstones += decoded.tombstones
        counters.malformed += len(decoded.failures) + len(planned.failures)
        counters.written += result.written
        counters.stale_skipped += result.stale
        counters.rejected += len(result.rejected)
        counters.batches += 1
        for event in events:
            await stream.ack(event)


@app.agent(products_topic, name="search-index-products")
async def index_products(stream: faust.StreamT) -> None:
    await _index(stream, plan_products)


@app.agent(reviews_topic, name="search-index-reviews")
async def index_reviews(stream: faust.StreamT) -> None:
    await _index(stream, lambda changes: plan_reviews(changes, REVIEWS.alias))


@app.page("/search/stats/")
async def search_stats(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    return view.json(asdict(counters))


_logged: dict[str, int] = {}


@app.timer(interval=10.0)
async def log_counters() -> None:
    now = asdict(counters)
    if now != _logged:
        log.info("search indexing: %s", ", ".join(f"{k}={v}" for k, v in now.items()))
        _logged.clear()
        _logged.update(now)
