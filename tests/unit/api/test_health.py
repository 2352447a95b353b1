"""The API's readiness carries each worker's own lag state: busy is ready, stalled is not."""

from __future__ import annotations

import logging
import warnings
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api import health
from api.app import create_app

URL = "http://127.0.0.1:6180/ready/"


def answer(status: int, body: dict[str, Any]) -> Any:
    return lambda url, timeout: httpx.Response(status, json=body)


def test_a_busy_worker_is_ready_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    lag = {"state": "busy", "behind": 40, "lag_ms": 7000.0, "reason": "behind, committing"}
    monkeypatch.setattr(
        health.httpx, "get", answer(200, {"ready": True, "state": "busy", "lag": lag})
    )
    seen = {
        "name": "worker 0",
        "state": "busy",
        "lag": {"state": "busy", "behind": 40, "lagMs": 7000.0, "reason": "behind, committing"},
    }
    assert health._worker(0, URL, "req_1") == (None, seen)


def test_a_stalled_worker_is_a_problem_named_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health.httpx, "get", answer(503, {"ready": False, "state": "stalled"}))
    problem, seen = health._worker(0, URL, "req_1")
    assert problem == "worker 0 not ready (stalled)"
    assert seen["state"] == "stalled"


def test_an_unreachable_worker_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, timeout: float) -> Any:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(health.httpx, "get", refuse)
    problem, seen = health._worker(1, URL, "req_1")
    assert problem == "worker 1 unreachable" and seen == {"name": "worker 1", "state": "down"}


def test_not_ready_says_fixed_phrases_and_logs_the_detail(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka and Elasticsearch on dead ports, the worker refusing: the answer names each
    dependency without its address or exception text; the log has them, with the request id."""
    monkeypatch.setenv("HW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("HW_ES_URL", "http://127.0.0.1:1")

    def refuse(url: str, timeout: float) -> Any:
        raise httpx.ConnectError(f"refused by {url}")

    monkeypatch.setattr(health.httpx, "get", refuse)
    client = TestClient(create_app())
    with caplog.at_level(logging.WARNING, logger="api.health"):
        response = client.get("/health/ready", headers={"x-request-id": "req_ready_1"})
    assert response.status_code == 503 and response.headers["retry-after"]
    details = [e["detail"] for e in response.json()["errors"]]
    assert details == ["kafka unreachable", "elasticsearch unreachable", "worker 0 unreachable"]
    assert "127.0.0.1" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "api.health"]
    worker, kafka, elasticsearch = logged
    assert all("req_ready_1" in line for line in logged)
    assert "refused by http://127.0.0.1" in worker and "kafka: KafkaError" in kafka
    assert "host='127.0.0.1', port=1" in elasticsearch


def test_the_elasticsearch_check_is_bounded_by_a_request_timeout() -> None:
    seen: dict[str, Any] = {}

    class Cluster:
        def health(self, timeout: str) -> Any:
            seen["timeout"] = timeout
            return SimpleNamespace(body={"status": "red"})

    class Es:
        cluster = Cluster()

        def options(self, **options: Any) -> Es:
            seen.update(options)
            return self

    assert health._elasticsearch(Es(), "req_1") == "elasticsearch not ready (red)"
    assert seen == {"request_timeout": 2, "opaque_id": "req_1", "timeout": "2s"}
