"""Liveness and readiness, at `/health/live` and `/health/ready` (operators' probes, outside
the versioned API): ready only when Kafka, Elasticsearch and every stream worker are; the
readiness body carries each worker's own lag state (busy is ready, stalled is not), and not
ready is a 503 error document, one error per problem. Workers are named ("worker 0"), never
by their address. `/health/detailed` (admin scope) tells the same looks in full, ready or not:
each dependency, and each worker's lag, breakers and checks as its own readiness page gives
them."""

from __future__ import annotations

import logging
from typing import Any, get_args

import httpx
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request
from pydantic import BaseModel

from api import envelope, errors, request_id
from headwater.settings import KafkaSettings
from streams.status.logic import State

log = logging.getLogger(__name__)
router = APIRouter(prefix="/health", tags=["health"])
# Behind the admin scope (see api.app): what the open probes do not tell anyone.
admin_router = APIRouter(prefix="/health", tags=["health"])
# The states a worker's page names; anything else it says is not repeated to the client.
_WORKER_STATES = frozenset(get_args(State))


class Live(BaseModel):
    status: str


class WorkerLag(BaseModel):
    """What a worker's own page says of its lag."""

    state: str | None = None
    behind: int | None = None
    lagMs: float | None = None
    reason: str | None = None


class WorkerSeen(BaseModel):
    name: str
    state: str | None
    lag: WorkerLag | None = None


class Ready(BaseModel):
    status: str
    workers: list[WorkerSeen]


class Dependency(BaseModel):
    name: str
    ok: bool
    problem: str | None


class WorkerDetail(WorkerSeen):
    breakers: dict[str, Any] | None = None
    checks: dict[str, Any] | None = None


class Detailed(BaseModel):
    status: str
    dependencies: list[Dependency]
    workers: list[WorkerDetail]


class DetailedResponse(envelope.Envelope[Detailed]):
    pass


class LiveResponse(envelope.Envelope[Live]):
    pass


class ReadyResponse(envelope.Envelope[Ready]):
    pass


@router.get("/live", response_model=LiveResponse, responses=errors.responses())
def live(request: Request) -> dict[str, Any]:
    return envelope.ok(request, {"status": "live"})


# Problems are short fixed phrases: the exception text (addresses, broker and node names) goes
# to the log with the request id, not to the client.


def _kafka(kafka: KafkaSettings, rid: str) -> str | None:
    try:
        # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
        AdminClient({**kafka.client_config()}).list_topics(timeout=2)
    except Exception as exc:
        log.warning("request %s: readiness: kafka: %s", rid, exc)
        return "kafka unreachable"
    return None


def _elasticsearch(es: Any, rid: str) -> str | None:
    try:
        # Bounded on the client's side too: the cluster's own `timeout` does not cover a
        # connection that hangs.
        health = es.options(request_timeout=2, opaque_id=rid).cluster.health(timeout="2s").body
    except Exception as exc:
        log.warning("request %s: readiness: elasticsearch: %s", rid, exc)
        return "elasticsearch unreachable"
    status = health.get("status")
    if status in ("green", "yellow"):
        return None
    log.warning("request %s: readiness: elasticsearch status %s", rid, status)
    return "elasticsearch not ready (red)" if status == "red" else "elasticsearch not ready"


def worker_lag(lag: Any) -> dict[str, Any] | None:
    """A worker page's `lag` in the API's terms (camelCase), its unknown keys left out."""
    if not isinstance(lag, dict):
        return None
    return {
        "state": lag.get("state"),
        "behind": lag.get("behind"),
        "lagMs": lag.get("lag_ms"),
        "reason": lag.get("reason"),
    }


def _postgres(request: Request, rid: str) -> str | None:
    database = getattr(request.app.state, "database", None)
    if database is None:
        return None
    try:
        with database.connection() as conn:
            conn.execute("SELECT 1 FROM headwater_api.api_keys LIMIT 1")
    except Exception as exc:
        log.warning("request %s: health: postgres: %s", rid, type(exc).__name__)
        return "postgres unreachable (keys and rate limits)"
    return None


def _worker(
    number: int, url: str, rid: str, detailed: bool = False
) -> tuple[str | None, dict[str, Any]]:
    """Worker `number`'s problem (None when ready) and what its page says of its lag: its
    state (ok, busy, stalled; down when unreachable) and `lag` (records behind, oldest age);
    `detailed`, its breakers and checks too. The address is logged, not answered."""
    name = f"worker {number}"
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        log.warning("request %s: readiness: worker %d at %s: %s", rid, number, url, exc)
        return f"{name} unreachable", {"name": name, "state": "down"}
    try:
        body = response.json()
    except ValueError:
        body = {}
    seen = {"name": name, "state": body.get("state"), "lag": worker_lag(body.get("lag"))}
    if detailed:
        seen |= {"breakers": body.get("breakers"), "checks": body.get("checks")}
    if response.status_code == 200:
        return None, seen
    state = body.get("state")
    log.warning(
        "request %s: readiness: worker %d at %s answered %d (%s)",
        rid,
        number,
        url,
        response.status_code,
        state,
    )
    reason = state if state in _WORKER_STATES else response.status_code
    return f"worker {number} not ready ({reason})", seen


def _workers(request: Request, rid: str, detailed: bool) -> list[tuple[str | None, dict[str, Any]]]:
    state = request.app.state
    streams = state.streams
    return [
        _worker(i, f"http://{streams.web_host}:{streams.worker_port(i)}/ready/", rid, detailed)
        for i in range(state.api.workers)
    ]


@router.get("/ready", response_model=ReadyResponse, responses=errors.responses(503))
def ready(request: Request) -> dict[str, Any]:
    state = request.app.state
    rid = request_id.of(request)
    workers = _workers(request, rid, detailed=False)
    problems = [
        _kafka(state.kafka, rid),
        _elasticsearch(state.es, rid),
        *(p for p, _ in workers),
    ]
    failing = [p for p in problems if p]
    if failing:
        raise errors.ApiError(
            *(errors.Problem(503, "UPSTREAM_UNAVAILABLE", p) for p in failing),
            headers={"Retry-After": str(errors.RETRY_AFTER_S)},
        )
    return envelope.ok(request, {"status": "ready", "workers": [seen for _, seen in workers]})


@admin_router.get("/detailed", response_model=DetailedResponse, responses=errors.responses())
def detailed(request: Request) -> dict[str, Any]:
    """Every dependency and worker as readiness sees them, ready or not (admin scope)."""
    state = request.app.state
    rid = request_id.of(request)
    workers = _workers(request, rid, detailed=True)
    dependencies = {
        "kafka": _kafka(state.kafka, rid),
        "elasticsearch": _elasticsearch(state.es, rid),
        "postgres": _postgres(request, rid),
    }
    ok = not any(dependencies.values()) and not any(p for p, _ in workers)
    return envelope.ok(
        request,
        {
            "status": "ready" if ok else "not ready",
            "dependencies": [
                {"name": name, "ok": problem is None, "problem": problem}
                for name, problem in dependencies.items()
            ],
            "workers": [seen for _, seen in workers],
        },
    )
