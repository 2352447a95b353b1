"""`GET /metrics` for Prometheus: requests, their status class and duration per route template
(`/api/v1/indexes/{index}/search`, never the raw path, so the labels stay few), and whatever
collectors are added (the pipeline's lag per stage, `api.lag`).

When the API runs as several processes (uvicorn `--workers`), `PROMETHEUS_MULTIPROC_DIR`
names a directory each process writes its counts to, and whichever process answers a scrape
sums them all (prometheus_client's multiprocess mode): the numbers are the service's, not one
process's. It must be set before prometheus_client is imported and emptied when the service
starts (`api.serve` does both).
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as exposition
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors

PATH = "/metrics"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A request no route matched (a 404): one label for all of them, whatever the path.
UNMATCHED = "unmatched"
# Seconds: from a few milliseconds (a search) to the dashboards' live streams, which last.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def route_label(scope: Scope) -> str:
    """The template of the route that served the request (as declared, with its `{params}`,
    under the prefixes of the routers it was included in), or `unmatched`.

    The route in the scope may carry its path without the prefixes of the routers including
    it (FastAPI's own route object); those prefixes hold no parameters here, so they are the
    request path's segments before the route's own."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str) or not template:
        return UNMATCHED
    own = template.strip("/").split("/")
    path = str(scope.get("path", "")).strip("/").split("/")
    if ("{" in template and ":path}" in template) or len(path) <= len(own):
        return template
    return "/" + "/".join([*path[: len(path) - len(own)], *own])


def status_class(status: int) -> str:
    """`2xx`, `4xx`, ...: the class of an HTTP status."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


class Metrics:
    """The API's metrics, in a registry of their own (never the process-wide default one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "headwater_api_requests",
            "HTTP requests answered, by route template, method and status class.",
            ["route", "method", "status_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "headwater_api_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        path = multiprocess_dir()
        if path is None:
            self.exposed = self.registry
        else:
            # The counts of every process, from their files; this process's own are among them.
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path=path)

    def add(self, collector: Collector) -> None:
        """A collector read at each scrape (per process: not summed across processes)."""
        self.exposed.register(collector)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, status_class(status)).inc()
        self.duration.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return exposition(self.exposed)


class MetricsMiddleware:
    """Counts and times every HTTP request once its answer is complete (or it failed)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            # An exception that escaped is answered 500 by the server's outermost layer.
            self.metrics.observe(
                route_label(scope), scope["method"], status, time.perf_counter() - started
            )


def router() -> APIRouter:
    routes = APIRouter(tags=["monitoring"])

    @routes.get(
        PATH,
        response_class=Response,
        responses={
            200: {
                "description": "The Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **errors.responses(),
        },
    )
    def metrics(request: Request) -> Response:
        """Requests per route template and status class, their duration, and the pipeline's
        lag per stage, for Prometheus to scrape."""
        # A plain function, run in the thread pool: the lag's look at the pipeline blocks.
        body = request.app.state.metrics.render()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return routes


def install(app: FastAPI, *collectors: Any) -> Metrics:
    """`GET /metrics` on `app`, counting every request; install it after any other middleware,
    so that it is the outermost and counts what they refuse too."""
    found = Metrics()
    for collector in collectors:
        found.add(collector)
    app.state.metrics = found
    app.add_middleware(MetricsMiddleware, metrics=found)
    app.include_router(router())
    return found
