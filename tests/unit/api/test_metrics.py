"""`/metrics`: requests by route template (never the raw path) and status class, durations,
collectors read at scrape; the pipeline's lag from two looks, cached."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from fastapi import APIRouter

from api import metrics
from api.app import base_app
from api.lag import PipelineLag, families
from streams.status.logic import Row


@pytest.mark.parametrize(
    ("scope", "label"),
    [
        (
            {"route": SimpleNamespace(path="/api/v1/indexes/{index}/search")},
            "/api/v1/indexes/{index}/search",
        ),
        (
            # FastAPI's route of an included router: its path without the prefix.
            {
                "route": SimpleNamespace(path="/indexes/{index}/search"),
                "path": "/api/v1/indexes/products/search",
            },
            "/api/v1/indexes/{index}/search",
        ),
        ({"route": SimpleNamespace(path="/metrics"), "path": "/metrics"}, "/metrics"),
        ({"path": "/api/v1/indexes/products/search"}, metrics.UNMATCHED),
        ({"route": SimpleNamespace(path="")}, metrics.UNMATCHED),
        ({"route": object()}, metrics.UNMATCHED),
    ],
)
def test_the_route_label_is_the_template_or_unmatched(scope: dict, label: str) -> None:
    assert metrics.route_label(scope) == label


@pytest.mark.parametrize(("status", "label"), [(200, "2xx"), (304, "3xx"), (404, "4xx"),
                                               (503, "5xx"), (42, "other")])  # fmt: skip
def test_status_classes(status: int, label: str) -> None:
    assert metrics.status_class(status) == label


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_are_counted_per_route_template_and_status_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV, raising=False)
    app = base_app()

    @app.get("/items/{item}")
    def item(item: int) -> dict[str, int]:
        return {"item": item}

    included = APIRouter(prefix="/things")

    @included.get("/{thing}/parts")
    def parts(thing: str) -> list[str]:
        return []

    app.include_router(included, prefix="/api/v9")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    metrics.install(app)
    client = TestClient(app, raise_server_exceptions=False)
    for number in range(3):
        client.get(f"/items/{number}")
    client.get("/items/not-a-number")
    client.get("/api/v9/things/kettle/parts")
    client.get("/nowhere/1")
    client.get("/nowhere/2")
    client.get("/boom")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def count(route: str, status: str) -> float:
        key = (("method", "GET"), ("route", route), ("status_class", status))
        return found.get(("headwater_api_requests_total", key), 0.0)

    assert count("/items/{item}", "2xx") == 3
    assert count("/items/{item}", "4xx") == 1
    assert count("/api/v9/things/{thing}/parts", "2xx") == 1
    assert count(metrics.UNMATCHED, "4xx") == 2
    assert count("/boom", "5xx") == 1
    assert not any("/items/1" in str(key) or "/nowhere" in str(key) for key in found)
    duration = (("method", "GET"), ("route", "/items/{item}"))
    assert found[("headwater_api_request_duration_seconds_count", duration)] == 4


def test_the_document_declares_metrics_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV, raising=False)
    app = base_app()
    metrics.install(app)
    operation = TestClient(app).get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert "500" in operation["responses"]


def test_in_multiprocess_mode_every_process_s_counts_are_summed(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Two processes' files in the directory: the scrape answers their sum."""
    import json
    import subprocess
    import sys

    monkeypatch.setenv(metrics.MULTIPROCESS_ENV, str(tmp_path))
    script = (
        "from api.metrics import Metrics\n"
        "m = Metrics()\n"
        "for _ in range({n}): m.observe('/a/{{x}}', 'GET', 200, 0.01)\n"
    )
    for n in (2, 5):
        subprocess.run([sys.executable, "-c", script.format(n=n)], check=True)
    scraped = subprocess.run(
        [sys.executable, "-c", "import sys; from api.metrics import Metrics; "
         "sys.stdout.write(Metrics().render().decode())"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    key = (("method", "GET"), ("route", "/a/{x}"), ("status_class", "2xx"))
    assert samples(scraped)[("headwater_api_requests_total", key)] == 7, json.dumps(scraped)


ROWS = [
    Row("source", "shop-source", "ok", 120.0, 0, "bytes"),
    Row("kafka", "shop.public.orders", "busy", 7000.0, 40, "records"),
    Row("worker", "worker 0", "down", detail="unreachable"),
]


def test_lag_families_carry_lag_backlog_and_state() -> None:
    found = {
        (s.name, *sorted(s.labels.values())): s.value
        for f in families(ROWS, with_state=True, age_s=2.0, up=True)
        for s in f.samples
    }
    assert found["headwater_pipeline_lag_seconds", "kafka", "shop.public.orders"] == 7.0
    assert found["headwater_pipeline_behind", "kafka", "records", "shop.public.orders"] == 40
    assert found["headwater_pipeline_state", "down", "worker", "worker 0"] == 1.0
    assert found["headwater_pipeline_state", "ok", "worker", "worker 0"] == 0.0
    # No lag known for the worker: no sample rather than a made-up zero.
    assert ("headwater_pipeline_lag_seconds", "worker", "worker 0") not in found
    no_state = [f.name for f in families(ROWS, with_state=False, age_s=0.0, up=True)]
    assert "headwater_pipeline_state" not in no_state


def test_lag_is_read_once_per_max_age_and_compares_with_the_previous_look() -> None:
    now = [100.0]
    looks: list[int] = []
    compared: list[tuple[int, int]] = []

    def look() -> int:
        looks.append(len(looks))
        return looks[-1]

    def rows(earlier: int, later: int) -> list[Row]:
        compared.append((earlier, later))
        return ROWS

    lag = PipelineLag(look, rows, max_age_s=10.0, clock=lambda: now[0])
    first = lag.sample()
    assert first == (ROWS, False, 0.0)  # no earlier look: no states yet
    now[0] += 4
    assert lag.sample() == (ROWS, False, 4.0) and looks == [0]
    now[0] += 8
    assert lag.sample() == (ROWS, True, 0.0)
    assert compared == [(0, 0), (0, 1)]


def test_a_failed_look_reads_as_down_not_as_an_error() -> None:
    def look() -> int:
        raise OSError("no route to host")

    lag = PipelineLag(look, lambda a, b: ROWS)
    names = {s.name: s.value for f in lag.collect() for s in f.samples if not s.labels}
    assert names["headwater_pipeline_sample_up"] == 0
