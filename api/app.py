"""The HTTP service: search and the dashboards under `/api/v1`, health probes under `/health`,
Prometheus metrics at `/metrics`, the dashboards page under `/ui`, with its OpenAPI document
(`/openapi.json`, `/docs`).

uvicorn api.app:create_app --factory --host 127.0.0.1 --port 8000

`create_app()` is the entry point: it loads the settings once and hands them to `build_app`,
which assembles the app from settings it is given (as the tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import dashboards, envelope, errors, health, lag, metrics, request_id, search
from api.auth import API_KEY_HEADER, Access
from api.db import Database
from api.keys import KeyStore
from api.limits import LiveStreams, RateLimiter
from api.settings import ApiSettings
from connectors.sources import resolve
from headwater.settings import KafkaSettings, Settings
from indexers.catalog import client
from indexers.declared import declared_indexes
from streams.dashboards.settings import DashboardSettings
from streams.settings import StreamsSettings

# The document's version; the URL carries only its major part (`envelope.VERSION`).
API_VERSION = "1.0.0"


def base_app(title: str = "Headwater") -> FastAPI:
    """An app with the API's conventions and no routes: request ids, errors, the document."""
    app = FastAPI(
        title=title,
        description="Search over the shop, kept fresh from its change stream, and its live "
        "dashboards. Successes are `{data, meta, links}`; failures `{errors: [...]}`.",
        version=API_VERSION,
        # A trailing slash is a 404 error document, not an undocumented 307 whose absolute
        # Location is built from the client's Host header.
        redirect_slashes=False,
    )
    app.add_middleware(request_id.RequestIdMiddleware)
    errors.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = request_id.document(errors.document(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """Browsers on `origins` may read the API (none when empty). No credentials mode: keys go
    in headers, which the listed origins may send."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", API_KEY_HEADER, request_id.HEADER, "Last-Event-ID"],
            expose_headers=[request_id.HEADER, "Retry-After", "WWW-Authenticate"],
        )


def protected(access: Access | None, scope: str) -> dict[str, Any]:
    """`include_router` arguments that put a router behind `scope` (nothing without access)."""
    if access is None:
        return {}
    return {"dependencies": [Depends(access.require(scope))], "responses": access.responses()}


def add_dashboards(
    app: FastAPI,
    kafka: KafkaSettings,
    ds: DashboardSettings,
    access: Access | None = None,
    live: LiveStreams | None = None,
) -> None:
    routes = dashboards.router(kafka, ds, live)
    app.include_router(routes, prefix=envelope.PREFIX, **protected(access, "dashboards"))
    app.include_router(dashboards.page())


def build_app(
    settings: Settings, api: ApiSettings, streams: StreamsSettings, ds: DashboardSettings
) -> FastAPI:
    """The whole API from settings built by the caller; keys, limits and live-stream leases in
    the source database's `headwater_api` schema (`headwater db migrate`)."""
    database = Database(settings.postgres, api.db_pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            database.close()

    app = base_app()
    app.router.lifespan_context = lifespan
    add_cors(app, api.cors_origins)
    access = Access(
        api,
        KeyStore(database.connection),
        RateLimiter(database.connection) if api.rate_limits else None,
    )
    # Three heartbeats without a renewal end a lease: its process is gone.
    live = LiveStreams(database.connection, api.live_streams_per_client, 3 * ds.heartbeat_s)
    app.state.api = api
    app.state.streams = streams
    app.state.access = access
    app.state.database = database
    pipelines, bindings = resolve(settings)
    indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    app.state.kafka = settings.kafka
    app.state.es = client(settings.elasticsearch, timeout_s=10)
    app.state.search_es = search.client(settings.elasticsearch)
    app.include_router(
        search.router(indexes, api), prefix=envelope.PREFIX, **protected(access, "search")
    )
    app.include_router(health.router)
    app.include_router(health.admin_router, **protected(access, "admin"))
    add_dashboards(app, settings.kafka, ds, access, live)
    # Last: the outermost middleware, so that it counts what any other one refuses.
    metrics.install(
        app, lag.pipeline_lag(settings, streams, api.workers, api.metrics_lag_max_age_s)
    )
    return app


def create_app() -> FastAPI:
    """The entry point (`uvicorn api.app:create_app --factory`): settings loaded once."""
    return build_app(Settings.load(), ApiSettings(), StreamsSettings(), DashboardSettings())


def dashboards_app(kafka: KafkaSettings, ds: DashboardSettings) -> FastAPI:
    """The dashboards alone (routes and page), open to anyone, as the tests and the benchmark
    serve them."""
    app = base_app("Headwater dashboards")
    add_dashboards(app, kafka, ds)
    return app
