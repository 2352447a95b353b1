"""The HTTP service: search and health (and the dashboards), with its OpenAPI document.

uvicorn api.app:create_app --factory --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api import dashboards, health, search
from api.settings import ApiSettings
from connectors.sources import resolve
from headwater.settings import Settings
from indexers.catalog import client
from indexers.declared import declared_indexes
from streams.settings import StreamsSettings


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    """A parameter that fails validation is the client's mistake: 400, naming the parameter."""
    assert isinstance(exc, RequestValidationError)
    messages = [
        f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
        for err in exc.errors()
    ]
    return JSONResponse({"detail": "; ".join(messages)}, status_code=400)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.load()
    kafka = settings.kafka
    es_settings = settings.elasticsearch
    app = FastAPI(
        title="Headwater",
        description="Search over the shop, kept fresh from its change stream.",
        version="0.1.0",
    )
    app.state.api = ApiSettings()
    app.state.streams = StreamsSettings()
    pipelines, bindings = resolve(settings)
    app.state.indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    app.state.kafka = kafka
    app.state.es = client(es_settings, timeout_s=10)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.include_router(search.router)
    app.include_router(health.router)
    app.include_router(dashboards.router(kafka))
    return app
