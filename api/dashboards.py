"""Dashboards over HTTP: the list, current values and series, a live SSE stream, the web page.

The API does not ask the stream workers. Each worker publishes every changed window value of
the partitions it owns to the compacted `dashboards.updates` topic (see
`streams.dashboards.agents`); this module reads that whole topic, without a consumer group, into
one `DashboardState`. So every API instance answers for every partition whichever worker owns
it, a rebalance or a worker restart changes nothing here, and after an API restart the compacted
topic gives back the latest value of every window.

Live updates are Server-Sent Events: on connect and whenever the state changes, the whole
dashboard (it is small) as an `update` event; a comment line every `heartbeat_s` keeps the
connection open through proxies; `retry` makes the browser's EventSource reconnect after
`reconnect_ms`, and a reconnect simply starts with the current snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from headwater.models.updates import decode
from headwater.settings import KafkaSettings
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.views import Dashboard, DashboardState, load_dashboards

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static" / "dashboards"
_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


class UpdatesFeed:
    """Reads the updates topic from the beginning, forever, into a `DashboardState`."""

    def __init__(self, kafka: KafkaSettings, ds: DashboardSettings) -> None:
        self.kafka = kafka
        self.ds = ds
        self.state = DashboardState(retention_s=ds.retention_s)
        self.caught_up = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboards-updates-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_changed(self, seen_version: int, timeout: float) -> int:
        """Wait until the state's version differs from `seen_version` (or timeout)."""
        while self.state.version == seen_version:
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                break
        return self.state.version

    async def ready(self) -> None:
        """Wait (a bounded time) until the topic has been read up to where it was at start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.caught_up.wait(), self.ds.catch_up_timeout_s)

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(**self.kafka.aiokafka_options())
        try:
            await admin.start()
            topic = NewTopic(
                self.ds.updates_topic,
                num_partitions=self.ds.updates_partitions,
                replication_factor=1,
                topic_configs={
                    "cleanup.policy": "compact,delete",
                    "retention.ms": str(int(self.ds.retention_s * 1000)),
                },
            )
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
        finally:
            await admin.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("dashboards feed: %s; reconnecting in 1s", exc)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        await self._ensure_topic()
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        try:
            # Inside: a shutdown during a slow start (a SASL handshake) still closes it.
            await consumer.start()
            # `_ensure_topic` made it (or the workers did) with this many partitions.
            partitions = range(self.ds.updates_partitions)
            tps = [TopicPartition(self.ds.updates_topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            last_prune = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            continue
                        try:
                            self.state.apply(decode(record.value))
                        except (ValueError, KeyError, TypeError) as exc:
                            log.warning(
                                "dashboards feed: skipping %s[%d]@%d: %s",
                                record.topic,
                                record.partition,
                                record.offset,
                                exc,
                            )
                if batches:
                    self._wake()
                if not self.caught_up.is_set():
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(pos >= end for pos, end in zip(positions, ends.values(), strict=True)):
                        self.caught_up.set()
                        self._wake()
                if time.monotonic() - last_prune > 60:
                    self.state.prune()
                    last_prune = time.monotonic()
        finally:
            await consumer.stop()


def router(kafka: KafkaSettings, ds: DashboardSettings | None = None) -> APIRouter:
    """The dashboards routes, with a lifespan that runs the updates feed."""
    ds = ds or DashboardSettings()
    dashboards = load_dashboards(ds.definitions_dir)
    feed = UpdatesFeed(kafka, ds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            await feed.stop()

    api = APIRouter(lifespan=lifespan, tags=["dashboards"])

    def find(name: str) -> Dashboard:
        dashboard = dashboards.get(name)
        if dashboard is None:
            raise HTTPException(404, f"no dashboard {name!r}; see GET /dashboards")
        return dashboard

    @api.get("/dashboards")
    async def list_dashboards() -> list[dict[str, Any]]:
        return [
            {
                "name": d.name,
                "title": d.title,
                "description": d.description,
                "panels": [p.id for p in d.panels],
                "url": f"/dashboards/{d.name}",
                "stream": f"/dashboards/{d.name}/stream",
            }
            for d in dashboards.values()
        ]

    @api.get("/dashboards/{name}")
    async def show_dashboard(name: str) -> dict[str, Any]:
        dashboard = find(name)
        await feed.ready()
        return feed.state.render(dashboard)

    @api.get("/dashboards/{name}/stream")
    async def stream_dashboard(name: str, request: Request) -> EventSourceResponse:
        dashboard = find(name)

        async def events() -> AsyncIterator[ServerSentEvent]:
            await feed.ready()
            version = feed.state.version
            snapshot = feed.state.render(dashboard)
            yield ServerSentEvent(
                data=json.dumps(snapshot), event="update", id=str(version), retry=ds.reconnect_ms
            )
            while True:
                version = await feed.wait_changed(version, timeout=ds.heartbeat_s)
                if await request.is_disconnected():
                    return
                if snapshot.get("version") == version:
                    continue
                snapshot = feed.state.render(dashboard)
                yield ServerSentEvent(data=json.dumps(snapshot), event="update", id=str(version))

        return EventSourceResponse(events(), ping=ds.heartbeat_s)

    @api.get("/ui/dashboards", response_class=HTMLResponse)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @api.get("/ui/dashboards/{asset}")
    async def asset(asset: str) -> FileResponse:
        media_type = _ASSETS.get(asset)
        if media_type is None:
            raise HTTPException(404, "no such asset")
        return FileResponse(STATIC_DIR / asset, media_type=media_type)

    return api
