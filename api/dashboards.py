"""Dashboards over HTTP: the list, current values and series, a live SSE stream
(`/api/v1/dashboards[/{name}[/events]]`), and the web page (`/ui/dashboards`).

The API does not ask the stream workers. Each worker publishes every changed window value of
the partitions it owns to the compacted `dashboards.updates` topic (see
`streams.dashboards.agents`); this module reads that whole topic, without a consumer group, into
one `DashboardState`. So every API instance answers for every partition whichever worker owns
it, a rebalance or a worker restart changes nothing here, and after an API restart the compacted
topic gives back the latest value of every window.

Live updates are Server-Sent Events: on connect and whenever the state changes, the whole
dashboard (it is small) as an `update` event; a comment line every `heartbeat_s` (30 s) keeps
the connection open through proxies; `retry` makes the browser's EventSource reconnect after
`reconnect_ms`. Each event's id names this process and the state's version: a reconnect whose
`Last-Event-ID` is still the current one to this process missed nothing and gets no snapshot
again; any other starts with the current snapshot (each event is the whole dashboard, so
nothing older is needed). With `live` (api.limits.LiveStreams), a client holds at most so many
streams open at once, over every API process; one more is a 429.
"""

# No `from __future__ import annotations`: FastAPI reads the route parameters' annotations,
# which name the dashboards known when the router is built, at definition time.

import asyncio
import contextlib
import json
import logging
import pathlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from anyio import CancelScope
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from api import envelope, errors
from api.db import UNAVAILABLE
from api.limits import LiveStreams
from headwater.models.updates import decode
from headwater.settings import KafkaSettings
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.views import Dashboard, DashboardState, load_dashboards

log = logging.getLogger(__name__)
STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static" / "dashboards"
_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


class UpdatesFeed:
    """Reads the updates topic from the beginning, forever, into a `DashboardState`."""

    def __init__(self, kafka: KafkaSettings, ds: DashboardSettings) -> None:
        self.kafka = kafka
        self.ds = ds
        self.state = DashboardState(retention_s=ds.retention_s)
        self.caught_up = asyncio.Event()
        # Set while a consumer is connected; a wait for catch-up that timed out is not
        # repeated until it is.
        self.reached = asyncio.Event()
        self._gave_up = False
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

    async def ready(self) -> bool:
        """Whether the topic has been read up to where it was at start, waiting for it a
        bounded time. Once a wait has timed out, later calls answer False at once until Kafka
        has been reached again, so that a Kafka outage does not hold every request for the
        whole timeout."""
        if self.caught_up.is_set():
            return True
        if self._gave_up and not self.reached.is_set():
            return False
        try:
            await asyncio.wait_for(self.caught_up.wait(), self.ds.catch_up_timeout_s)
        except TimeoutError:
            self._gave_up = True
            return False
        return True

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
                self.reached.clear()
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
            self.reached.set()
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


class DashboardLinks(envelope.Links):
    """A dashboard's own links: its current values (`self`) and its live stream (`events`)."""

    events: str


class DashboardSummary(BaseModel):
    name: str
    title: str
    description: str
    panels: list[str]
    links: DashboardLinks


class DashboardSnapshot(BaseModel):
    """A dashboard's current values: panels as `streams.dashboards.views` renders them."""

    name: str
    title: str
    description: str
    now_ms: int | None
    last_event_ms: int | None
    events: int
    dropped_late: int
    version: int
    panels: list[dict[str, Any]]


class DashboardsResponse(envelope.Envelope[list[DashboardSummary]]):
    pass


class DashboardResponse(envelope.Envelope[DashboardSnapshot]):
    # Declared, or the response model would drop `events` from the answer.
    links: DashboardLinks


def _paths(name: str) -> dict[str, str]:
    path = f"{envelope.PREFIX}/dashboards/{name}"
    return {"self": path, "events": f"{path}/events"}


def event_id(instance: str, version: int) -> str:
    return f"{instance}-{version}"


def router(
    kafka: KafkaSettings, ds: DashboardSettings | None = None, live: LiveStreams | None = None
) -> APIRouter:
    """The dashboards routes, with a lifespan that runs the updates feed; `live` caps the
    streams each client holds open (no cap without it)."""
    ds = ds or DashboardSettings()
    dashboards = load_dashboards(ds.definitions_dir)
    feed = UpdatesFeed(kafka, ds)
    # Versions count this process's reads of the topic: an id from another process (or an
    # earlier run of this one) never matches.
    instance = uuid.uuid4().hex[:12]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            await feed.stop()

    api = APIRouter(prefix="/dashboards", lifespan=lifespan, tags=["dashboards"])
    # Documented as the defined names; any other answers 404.
    Name = Annotated[
        str,
        Path(description="A dashboard.", json_schema_extra={"enum": sorted(dashboards)}),
    ]

    async def caught_up() -> None:
        if not await feed.ready():
            # With the request's id (`api.logs`), as every line logged while serving it.
            log.warning("dashboards: the updates feed has not caught up; answering 503")
            detail = (
                "the dashboards' updates are not available (Kafka unreachable?); try again later"
            )
            raise errors.ApiError(
                errors.Problem(503, "UPSTREAM_UNAVAILABLE", detail),
                headers={"Retry-After": str(errors.RETRY_AFTER_S)},
            )

    def find(name: str) -> Dashboard:
        dashboard = dashboards.get(name)
        if dashboard is None:
            detail = f"no dashboard {name!r}; known: {', '.join(sorted(dashboards))}"
            raise errors.ApiError(errors.Problem(404, "NOT_FOUND", detail, {"parameter": "name"}))
        return dashboard

    @api.get("", response_model=DashboardsResponse, responses=errors.responses())
    async def list_dashboards(request: Request) -> dict[str, Any]:
        """The dashboards, each with its links: current values and live events."""
        listed = [
            {
                "name": d.name,
                "title": d.title,
                "description": d.description,
                "panels": [p.id for p in d.panels],
                "links": _paths(d.name),
            }
            for d in dashboards.values()
        ]
        return envelope.ok(request, listed)

    @api.get("/{name}", response_model=DashboardResponse, responses=errors.responses(404, 503))
    async def show_dashboard(request: Request, name: Name) -> dict[str, Any]:
        """A dashboard's current values and recent series."""
        dashboard = find(name)
        await caught_up()
        return envelope.ok(request, feed.state.render(dashboard), events=_paths(name)["events"])

    @api.get(
        "/{name}/events",
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "Server-Sent Events: `update` events whose data is the "
                "dashboard (as `data` of GET /api/v1/dashboards/{name}), the first at once.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **errors.responses(404, 429, 503),
        },
    )
    async def dashboard_events(request: Request, name: Name) -> EventSourceResponse:
        """The dashboard live: its current values on connect (unless `Last-Event-ID` is still
        current) and after every change."""
        dashboard = find(name)
        # Before the stream starts, so that an unavailable feed is a 503, not an empty 200.
        await caught_up()
        lease = await open_lease(request)
        resumed_at = request.headers.get("last-event-id")

        async def events() -> AsyncIterator[ServerSentEvent]:
            renewed = time.monotonic()
            sent = 0
            try:
                version = feed.state.version
                snapshot = feed.state.render(dashboard)
                log.info("dashboards: %s stream opened at version %d", name, version)
                if resumed_at == event_id(instance, version):
                    yield ServerSentEvent(comment="resumed", retry=ds.reconnect_ms)
                else:
                    sent += 1
                    yield ServerSentEvent(
                        data=json.dumps(snapshot),
                        event="update",
                        id=event_id(instance, version),
                        retry=ds.reconnect_ms,
                    )
                while True:
                    version = await feed.wait_changed(version, timeout=ds.heartbeat_s)
                    if await request.is_disconnected():
                        return
                    if lease and time.monotonic() - renewed >= ds.heartbeat_s:
                        await run_in_threadpool(renew, lease)
                        renewed = time.monotonic()
                    if snapshot.get("version") == version:
                        continue
                    snapshot = feed.state.render(dashboard)
                    sent += 1
                    yield ServerSentEvent(
                        data=json.dumps(snapshot), event="update", id=event_id(instance, version)
                    )
            finally:
                log.info("dashboards: %s stream closed after %d update(s)", name, sent)
                if lease:
                    # Shielded: the stream ends by cancellation when the client goes away.
                    with CancelScope(shield=True):
                        await run_in_threadpool(release, lease)

        # A client that stops reading is dropped once a send has waited this long.
        return EventSourceResponse(events(), ping=ds.heartbeat_s, send_timeout=2 * ds.heartbeat_s)

    async def open_lease(request: Request) -> str | None:
        principal = getattr(request.state, "principal", None)
        if live is None or principal is None:
            return None
        try:
            lease = await run_in_threadpool(live.open, principal.client)
        except UNAVAILABLE as exc:
            log.warning("live stream lease: %s", type(exc).__name__)
            raise errors.ApiError(
                errors.Problem(503, "UPSTREAM_UNAVAILABLE", "live streams are unavailable"),
                headers={"Retry-After": str(errors.RETRY_AFTER_S)},
            ) from None
        if lease is None:
            detail = f"at most {live.cap} live streams at once; close one first"
            raise errors.ApiError(
                errors.Problem(429, "RATE_LIMITED", detail),
                headers={"Retry-After": str(errors.RETRY_AFTER_S)},
            )
        return lease

    def renew(lease: str) -> None:
        assert live is not None
        try:
            live.renew(lease)
        except UNAVAILABLE as exc:  # the stream goes on; the lease may lapse, never wrongly
            log.warning("live stream lease %s not renewed: %s", lease, type(exc).__name__)

    def release(lease: str) -> None:
        assert live is not None
        try:
            live.close(lease)
        except UNAVAILABLE as exc:  # it expires by itself
            log.warning("live stream lease %s not closed: %s", lease, type(exc).__name__)

    return api


def page() -> APIRouter:
    """The web page (not part of the API: outside its prefix and its document)."""
    ui = APIRouter(prefix="/ui/dashboards", include_in_schema=False)

    @ui.get("", response_class=HTMLResponse)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @ui.get("/{asset}")
    async def asset(asset: str) -> FileResponse:
        media_type = _ASSETS.get(asset)
        if media_type is None:
            raise errors.ApiError(errors.Problem(404, "NOT_FOUND", f"no asset {asset!r}"))
        return FileResponse(STATIC_DIR / asset, media_type=media_type)

    return ui
