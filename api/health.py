"""Liveness and readiness, at `/health/live` and `/health/ready` (operators' probes, outside
the versioned API): ready only when Kafka, Elasticsearch and every stream worker are; the
readiness body carries each worker's own lag state (busy is ready, stalled is not), and not
ready is a 503 error document, one error per problem."""

from __future__ import annotations

from typing import Any

import httpx
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request
from pydantic import BaseModel

from api import envelope, errors
from headwater.settings import KafkaSettings

router = APIRouter(prefix="/health", tags=["health"])


class Live(BaseModel):
    status: str


class WorkerSeen(BaseModel):
    url: str
    state: str | None
    lag: dict[str, Any] | None = None


class Ready(BaseModel):
    status: str
    workers: list[WorkerSeen]


class LiveResponse(envelope.Envelope[Live]):
    pass


class ReadyResponse(envelope.Envelope[Ready]):
    pass


@router.get("/live", response_model=LiveResponse, responses=errors.responses())
def live(request: Request) -> dict[str, Any]:
    return envelope.ok(request, {"status": "live"})


def _kafka(kafka: KafkaSettings) -> str | None:
    try:
        # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
        AdminClient({**kafka.client_config()}).list_topics(timeout=2)
    except Exception as exc:
        return f"kafka: {exc}"
    return None


def _elasticsearch(es: Any) -> str | None:
    try:
        health = es.cluster.health(timeout="2s").body
    except Exception as exc:
        return f"elasticsearch: {exc}"
    return None if health.get("status") in ("green", "yellow") else "elasticsearch: red"


def _worker(url: str) -> tuple[str | None, dict[str, Any]]:
    """A worker's problem (None when ready) and what its page says of its lag: its state
    (ok, busy, stalled; down when unreachable) and `lag` (records behind, oldest age)."""
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        return f"worker {url}: {exc}", {"url": url, "state": "down"}
    try:
        body = response.json()
    except ValueError:
        body = {}
    seen = {"url": url, "state": body.get("state"), "lag": body.get("lag")}
    if response.status_code == 200:
        return None, seen
    return f"worker {url}: not ready ({body.get('state') or response.status_code})", seen


@router.get("/ready", response_model=ReadyResponse, responses=errors.responses(503))
def ready(request: Request) -> dict[str, Any]:
    state = request.app.state
    streams = state.streams
    workers = [
        _worker(f"http://{streams.web_host}:{streams.worker_port(i)}/ready/")
        for i in range(state.api.workers)
    ]
    problems = [_kafka(state.kafka), _elasticsearch(state.es), *(p for p, _ in workers)]
    failing = [p for p in problems if p]
    if failing:
        raise errors.ApiError(
            *(errors.Problem(503, "UPSTREAM_UNAVAILABLE", p) for p in failing),
            headers={"Retry-After": str(errors.RETRY_AFTER_S)},
        )
    return envelope.ok(request, {"status": "ready", "workers": [seen for _, seen in workers]})
