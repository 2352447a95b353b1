"""The API keeps its OpenAPI document: schemathesis fuzzes every operation against the live app
(uvicorn on a free port, on the real stack's Elasticsearch and Kafka) and fails on a server
error, a status the document does not list, a body or header that breaks the document's
schema, or a content type it does not declare.

The app runs as it ships: credentials required and rate limits counted in PostgreSQL. The
fuzzer sends an admin key of its own (made in the key table, revoked at the end); without it
every operation but the open probes is a documented 401.

The dashboards' live events (Server-Sent Events) are left out of the fuzzing: the stream never
ends, so no response could be read whole and checked. They get assertions of their own below,
as do the things the last fuzzer run found wanting (an empty `filter=` refused).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import build_app
from api.keys import direct_store as store
from api.settings import ApiSettings
from headwater.cli.db import migrate
from headwater.settings import Settings
from streams.dashboards.harness import ApiServer
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.views import stream_snapshots
from streams.settings import StreamsSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Per operation and generation phase; with the coverage phase's own cases this keeps the whole
# run near a minute on 2 cores.
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Readiness answers 503 by design when a dependency (e.g. a stream worker) is down: that
# status is documented, so only the other checks apply to it.
READINESS = "/health/ready"
SEEN: Counter[tuple[str, int]] = Counter()
UNREFUSABLE: list[str] = []
# The fuzzer's credentials (an admin key of this module's own).
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[ApiServer]:
    """The whole app, its dashboards reading an updates topic of this module's own."""
    ds = DashboardSettings(
        updates_topic=f"hwapi-{uuid.uuid4().hex[:10]}.dashboards.updates",
        catch_up_timeout_s=5.0,
        heartbeat_s=2.0,
    )
    migrate(stack.postgres)
    keys = store(stack.postgres)
    key, token = keys.create(f"contract-{uuid.uuid4().hex[:8]}", ["admin"])
    AUTH["Authorization"] = f"Bearer {token}"
    app = build_app(stack, ApiSettings(anonymous=False, rate_limits=True), StreamsSettings(), ds)
    try:
        with ApiServer(stack.kafka, ds, app=app) as server:
            yield server
    finally:
        keys.revoke(key.id)
    admin = AdminClient({**stack.kafka.client_config()})
    for future in admin.delete_topics([ds.updates_topic]).values():
        with contextlib.suppress(Exception):  # best effort: a leftover test topic harms nobody
            future.result(timeout=30)
    print(
        "\nfuzzed responses by operation and status: "
        + json.dumps({f"{op} -> {status}": n for (op, status), n in sorted(SEEN.items())})
    )


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    """Every generated case of one operation, called on the live app and checked."""
    checks = CHECKS[1:] if operation.path == READINESS else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=AUTH, checks=checks)
        SEEN[(operation.label, response.status_code)] += 1

    run()


# Schemathesis's strategies use `random`, which this Hypothesis deprecates (a warning of theirs).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_every_operation_keeps_the_document(api: ApiServer) -> None:
    """Schemathesis as a library: each operation's positive and negative cases in turn (its
    pytest plugin does not run on this pytest)."""
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json").exclude(
        path_regex=r"/events$"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6, [op.label for op in operations]
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE)
        try:
            _fuzz(operation, GenerationMode.NEGATIVE)
        except Unsatisfiable:
            # No invalid request can be sent (only an optional request-id header to get wrong,
            # and a header cannot carry what its pattern refuses): nothing to refuse.
            UNREFUSABLE.append(operation.label)
    assert not set(UNREFUSABLE) & {op.label for op in operations if "/indexes/" in op.path}
    statuses = {status for _, status in SEEN}
    # The fuzzing reached both answers and refusals, or it proved little.
    assert 200 in statuses and 400 in statuses, SEEN


def test_the_document_covers_every_route_but_the_page(api: ApiServer) -> None:
    document = httpx.get(f"{api.url}/openapi.json", timeout=10).json()
    assert document["info"]["version"] == "1.0.0"
    # The versioned API, and the operators' routes beside it: probes and metrics.
    assert all(
        path.startswith(("/api/v1/", "/health/")) or path == "/metrics"
        for path in document["paths"]
    )
    assert "/metrics" in document["paths"]
    assert "/api/v1/dashboards/{name}/events" in document["paths"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_without_credentials_only_the_probes_and_metrics_answer(api: ApiServer) -> None:
    document = httpx.get(f"{api.url}/openapi.json", timeout=10).json()
    for path, item in document["paths"].items():
        if "{" in path or path.endswith("/events"):
            continue
        response = httpx.get(f"{api.url}{path}", timeout=30)
        if path in ("/health/live", "/health/ready", "/metrics"):
            # Operators' routes, open like a load balancer's or a scraper's probe.
            assert response.status_code in (200, 503), path
            continue
        assert response.status_code == 401, path
        assert "401" in item["get"]["responses"], path
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_empty_filter_is_no_filter_and_pages_link_to_each_other(api: ApiServer) -> None:
    search = f"{api.url}/api/v1/indexes/products/search"
    unfiltered = httpx.get(search, params={"size": 2}, headers=AUTH, timeout=30)
    assert unfiltered.status_code == 200, unfiltered.text
    empty = httpx.get(search, params={"size": 2, "filter": ""}, headers=AUTH, timeout=30)
    assert empty.status_code == 200, empty.text
    assert empty.json()["data"]["total"] == unfiltered.json()["data"]["total"]
    body = empty.json()
    page = body["meta"]["page"]
    assert (page["number"], page["size"]) == (1, 2)
    assert body["links"]["prev"] is None
    if page["totalPages"] > 1:
        second = httpx.get(api.url + body["links"]["next"], headers=AUTH, timeout=30)
        assert second.status_code == 200 and second.json()["meta"]["page"]["number"] == 2
        assert second.json()["links"]["prev"] == body["links"]["self"]


def test_a_sort_orders_the_hits(api: ApiServer) -> None:
    response = httpx.get(
        f"{api.url}/api/v1/indexes/products/search",
        params={"sort": "price:desc", "size": 20},
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    prices = [h["source"]["price"] for h in response.json()["data"]["hits"]]
    numbers = [float(p) for p in prices if p is not None]
    assert numbers == sorted(numbers, reverse=True)


def test_live_events_start_with_the_dashboard_and_carry_the_request_id(api: ApiServer) -> None:
    url = f"{api.url}/api/v1/dashboards/sales/events"
    headers = {"X-Request-ID": "contract-events-1", **AUTH}
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=30)) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["x-request-id"] == "contract-events-1"
        first = next(stream_snapshots(answer.iter_lines()))
    assert first["name"] == "sales" and isinstance(first["panels"], list)


def test_live_events_of_an_unknown_dashboard_are_a_404_error_document(api: ApiServer) -> None:
    response = httpx.get(f"{api.url}/api/v1/dashboards/nope/events", headers=AUTH, timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["code"] == "NOT_FOUND" and error["source"] == {"parameter": "name"}
