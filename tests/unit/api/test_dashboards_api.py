"""The dashboards routes' answers and document, with the updates feed replaced (no Kafka)."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api import dashboards, errors
from api.app import dashboards_app
from headwater.settings import KafkaSettings
from streams.dashboards.settings import DashboardSettings


@pytest.fixture
def caught_up(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The dashboards app with a feed that has read the (empty) topic to its end."""

    async def consume(feed: dashboards.UpdatesFeed) -> None:
        feed.caught_up.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(dashboards.UpdatesFeed, "_consume", consume)
    app = dashboards_app(KafkaSettings(), DashboardSettings(catch_up_timeout_s=1.0))
    with TestClient(app) as client:
        yield client


def test_a_dashboard_links_to_its_events_in_the_body_and_the_document(
    caught_up: TestClient,
) -> None:
    response = caught_up.get("/api/v1/dashboards/sales")
    assert response.status_code == 200
    assert response.json()["links"] == {
        "self": "/api/v1/dashboards/sales",
        "events": "/api/v1/dashboards/sales/events",
    }
    document = caught_up.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    answer = document["paths"]["/api/v1/dashboards/{name}"]["get"]["responses"]["200"]
    ref = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    links = schemas[ref]["properties"]["links"]["$ref"].rsplit("/", 1)[-1]
    assert {"self", "events"} <= set(schemas[links]["required"])


def test_the_list_declares_each_dashboards_links(caught_up: TestClient) -> None:
    listed = caught_up.get("/api/v1/dashboards").json()["data"]
    sales = next(d for d in listed if d["name"] == "sales")
    assert sales["links"] == {
        "self": "/api/v1/dashboards/sales",
        "events": "/api/v1/dashboards/sales/events",
    }
    schemas = caught_up.get("/openapi.json").json()["components"]["schemas"]
    summary_links = schemas["DashboardSummary"]["properties"]["links"]["$ref"]
    assert summary_links.endswith("/DashboardLinks")
    assert {"self", "events"} <= set(schemas["DashboardLinks"]["required"])


def test_with_kafka_down_a_dashboard_is_503_after_one_wait_then_at_once() -> None:
    ds = DashboardSettings(catch_up_timeout_s=0.5)
    app = dashboards_app(KafkaSettings(bootstrap_servers="127.0.0.1:1"), ds)
    with TestClient(app) as client:
        started = time.monotonic()
        first = client.get("/api/v1/dashboards/sales")
        waited = time.monotonic() - started
        assert first.status_code == 503 and waited >= 0.5
        assert first.headers["retry-after"] == str(errors.RETRY_AFTER_S)
        (error,) = first.json()["errors"]
        assert error["code"] == "UPSTREAM_UNAVAILABLE" and "127.0.0.1" not in error["detail"]
        for path in ("/api/v1/dashboards/sales", "/api/v1/dashboards/sales/events"):
            started = time.monotonic()
            again = client.get(path)
            assert again.status_code == 503 and again.headers["retry-after"]
            assert time.monotonic() - started < 0.4


def test_both_dashboard_operations_declare_503_with_retry_after(caught_up: TestClient) -> None:
    paths = caught_up.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/dashboards/{name}", "/api/v1/dashboards/{name}/events"):
        unavailable = paths[path]["get"]["responses"]["503"]
        assert "Retry-After" in unavailable["headers"]
        schema = unavailable["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorDocument"}
