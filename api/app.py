"""The HTTP service: search and the dashboards under `/api/v1`, health probes under `/health`,
Prometheus metrics at `/metrics`, the dashboards page under `/ui`, with its OpenAPI document
(`/openapi.json`, `/docs`).

uvicorn api.app:create_app --factory --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api import dashboards, envelope, errors, health, lag, metrics, request_id, search
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


def add_dashboards(app: FastAPI, kafka: KafkaSettings, ds: DashboardSettings) -> None:
    app.include_router(dashboards.router(kafka, ds), prefix=envelope.PREFIX)
    app.include_router(dashboards.page())


def create_app(
    settings: Settings | None = None, dashboard_settings: DashboardSettings | None = None
) -> FastAPI:
    settings = settings or Settings.load()
    app = base_app()
    app.state.api = ApiSettings()
    app.state.streams = StreamsSettings()
    pipelines, bindings = resolve(settings)
    indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    app.state.kafka = settings.kafka
    app.state.es = client(settings.elasticsearch, timeout_s=10)
    app.state.search_es = search.client(settings.elasticsearch)
    app.include_router(search.router(indexes, app.state.api), prefix=envelope.PREFIX)
    app.include_router(health.router)
    add_dashboards(app, settings.kafka, dashboard_settings or DashboardSettings())
    # Last: the outermost middleware, so that it counts what any other one refuses.
    api, streams = app.state.api, app.state.streams
    metrics.install(
        app, lag.pipeline_lag(settings, streams, api.workers, api.metrics_lag_max_age_s)
    )
    return app


def dashboards_app(kafka: KafkaSettings, ds: DashboardSettings) -> FastAPI:
    """The dashboards alone (routes and page), as the tests and the benchmark serve them."""
    app = base_app("Headwater dashboards")
    add_dashboards(app, kafka, ds)
    return app
