"""The API's readiness carries each worker's own lag state: busy is ready, stalled is not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api import health

URL = "http://127.0.0.1:6180/ready/"


def answer(status: int, body: dict[str, Any]) -> Any:
    return lambda url, timeout: httpx.Response(status, json=body)


def test_a_busy_worker_is_ready_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    lag = {"state": "busy", "behind": 40, "lag_ms": 7000.0, "reason": "behind, committing"}
    monkeypatch.setattr(
        health.httpx, "get", answer(200, {"ready": True, "state": "busy", "lag": lag})
    )
    assert health._worker(URL) == (None, {"url": URL, "state": "busy", "lag": lag})


def test_a_stalled_worker_is_a_problem_named_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health.httpx, "get", answer(503, {"ready": False, "state": "stalled"}))
    problem, seen = health._worker(URL)
    assert problem == f"worker {URL}: not ready (stalled)"
    assert seen["state"] == "stalled"


def test_an_unreachable_worker_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, timeout: float) -> Any:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(health.httpx, "get", refuse)
    problem, seen = health._worker(URL)
    assert problem is not None and seen == {"url": URL, "state": "down"}
