"""Error documents: one shape for every failure, each with the status and code it names."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, ConnectionError, ConnectionTimeout
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api import errors
from api.app import base_app
from api.request_id import HEADER
from api.search import SearchResponse, SuggestionsResponse
from indexers.search import BadFilter, BadPaging, BadSort, NotSupported, SearchError


def _request(method: str = "GET", path: str = "/x") -> Request:
    return Request({"type": "http", "method": method, "path": path, "headers": [], "state": {}})


def _es_error(status: int, kind: str = "search_phase_execution_exception") -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "es", 9200))
    return ApiError(kind, meta, {"error": {"type": kind}, "status": status})


def test_a_document_holds_every_field_of_every_error() -> None:
    problems = [
        errors.Problem(400, "BAD_FILTER", "cannot filter on 'x'", {"parameter": "filter"}),
        errors.Problem(400, "VALIDATION_ERROR", "page: too small", {"parameter": "page"}),
    ]
    document = errors.shape(problems, "req_1", "2026-01-01T00:00:00Z")
    first, second = document["errors"]
    assert first["status"] == "400" and first["code"] == "BAD_FILTER"
    assert first["title"] == "Invalid filter" and first["source"] == {"parameter": "filter"}
    assert first["meta"] == {"timestamp": "2026-01-01T00:00:00Z", "requestId": "req_1"}
    assert first["id"] != second["id"] and first["id"].startswith("err_")
    errors.ErrorDocument.model_validate(document)


def test_validation_errors_name_their_parameter_header_or_pointer() -> None:
    raw: list[dict[str, Any]] = [
        {"loc": ("query", "size"), "msg": "Input should be greater than or equal to 1"},
        {"loc": ("path", "index"), "msg": "bad"},
        {"loc": ("header", "x-token"), "msg": "missing"},
        {"loc": ("body", "items", 0, "id"), "msg": "missing"},
    ]
    size, index, header, body = errors.validation_problems(raw)
    assert size == errors.Problem(
        400,
        "VALIDATION_ERROR",
        "size: Input should be greater than or equal to 1",
        {"parameter": "size"},
    )
    assert index.source == {"parameter": "index"}
    assert header.source == {"header": "x-token"}
    assert body.source == {"pointer": "/items/0/id"} and body.status == 400


@pytest.mark.parametrize(
    ("exc", "status", "code", "parameter"),
    [
        (BadFilter("cannot filter"), 400, "BAD_FILTER", "filter"),
        (BadSort("cannot sort"), 400, "BAD_SORT", "sort"),
        (BadPaging("too deep"), 400, "VALIDATION_ERROR", "page"),
        (BadPaging("size", "size"), 400, "VALIDATION_ERROR", "size"),
        (SearchError("q too long", "q"), 400, "VALIDATION_ERROR", "q"),
        (NotSupported("no suggest field", "prefix"), 422, "UNPROCESSABLE", "prefix"),
    ],
)
def test_search_refusals_keep_their_kind(
    exc: SearchError, status: int, code: str, parameter: str
) -> None:
    problem = errors.search_problem(exc)
    assert (problem.status, problem.code, problem.source) == (
        status,
        code,
        {"parameter": parameter},
    )
    assert problem.detail == str(exc)


def test_elasticsearch_unavailable_is_503_with_retry_after() -> None:
    for exc in (ConnectionError("refused"), ConnectionTimeout("slow"), _es_error(503)):
        problem, headers = errors.elasticsearch_problem(exc)
        assert (problem.status, problem.code) == (503, "UPSTREAM_UNAVAILABLE")
        assert headers == {"Retry-After": str(errors.RETRY_AFTER_S)}
    missing, _ = errors.elasticsearch_problem(_es_error(404, "index_not_found_exception"))
    assert missing.status == 503 and "not available" in missing.detail


def test_a_query_elasticsearch_refuses_is_422_naming_only_the_error_type() -> None:
    problem, headers = errors.elasticsearch_problem(_es_error(400, "too_many_nested_clauses"))
    assert (problem.status, problem.code, headers) == (422, "UNPROCESSABLE", {})
    assert "too_many_nested_clauses" in problem.detail and "es:9200" not in problem.detail


def test_routing_misses_say_what_was_not_found_or_allowed() -> None:
    missing = errors.http_problem(_request(path="/search"), HTTPException(404))
    assert (missing.code, missing.title) == ("NOT_FOUND", "Not found")
    assert "nothing at /search" in missing.detail and "/api/v1" in missing.detail
    wrong = errors.http_problem(
        _request("POST", "/health/live"), HTTPException(405, headers={"Allow": "GET"})
    )
    assert wrong.code == "METHOD_NOT_ALLOWED"
    assert wrong.detail == "POST is not allowed on /health/live; allowed: GET"
    # Statuses still to come (access control, rate limits) have their codes already.
    limited = errors.http_problem(_request(), HTTPException(429, "slow down"))
    assert (limited.code, limited.title, limited.detail) == (
        "RATE_LIMITED",
        "Too Many Requests",
        "slow down",
    )


def test_declared_error_responses_always_include_500() -> None:
    declared = errors.responses(404, 400)
    assert list(declared) == [400, 404, 500]
    assert all(entry["model"] is errors.ErrorDocument for entry in declared.values())


def test_a_refusal_whose_body_is_not_elasticsearchs_json_says_a_fixed_phrase() -> None:
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "es", 9200))
    page = "<html><body>proxy at 10.0.0.7 refused alice@example.com</body></html>"
    for body in (page, {"error": page}, {"error": {"type": page}}, {"error": {"type": 7}}):
        problem, _ = errors.elasticsearch_problem(ApiError(page, meta, body))
        assert (problem.status, problem.detail) == (422, "Elasticsearch could not run this query")


class _FailingEs:
    """Elasticsearch as the routes see it, answering every search with `answer` (raised when
    it is an exception)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.options_seen: list[dict[str, Any]] = []

    def options(self, **options: Any) -> _FailingEs:
        self.options_seen.append(options)
        return self

    async def search(self, **params: Any) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return SimpleNamespace(body=self.answer)


def _app_with(open_app: Callable[..., FastAPI], es: Any) -> TestClient:
    app = open_app()
    app.state.search_es = es
    return TestClient(app, raise_server_exceptions=False)


def test_the_elasticsearch_failure_log_has_no_query_text(
    caplog: pytest.LogCaptureFixture, open_app: Callable[..., FastAPI]
) -> None:
    email = "alice@example.com"
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "es", 9200))
    body = {"error": {"type": "query_shard_exception", "reason": f"failed on [{email}]"}}
    refused = ApiError(f"query_shard_exception: failed on [{email}]", meta, body)
    unreachable = ConnectionError(f"refused while searching for {email} at es:9200")
    for exc, status in ((refused, 422), (unreachable, 503)):
        caplog.clear()
        client = _app_with(open_app, _FailingEs(exc))
        with caplog.at_level(logging.WARNING, logger="api.errors"):
            response = client.get(
                "/api/v1/indexes/products/search", params={"q": email}, headers={HEADER: "req_es"}
            )
        assert response.status_code == status and email not in response.text
        (line,) = [r.getMessage() for r in caplog.records if r.name == "api.errors"]
        assert email not in line and "req_es" in line and type(exc).__name__ in line


def test_the_elasticsearch_failure_log_names_status_and_error_type(
    caplog: pytest.LogCaptureFixture, open_app: Callable[..., FastAPI]
) -> None:
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "es", 9200))
    body = {"error": {"type": "query_shard_exception"}}
    client = _app_with(open_app, _FailingEs(ApiError("secret query", meta, body)))
    with caplog.at_level(logging.WARNING, logger="api.errors"):
        client.get("/api/v1/indexes/products/search", headers={HEADER: "req_es"})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "api.errors"]
    assert line == (
        "request req_es: Elasticsearch failed: ApiError, status 400, "
        "error type query_shard_exception"
    )


def test_an_answer_failing_validation_logs_where_not_the_values(
    caplog: pytest.LogCaptureFixture, open_app: Callable[..., FastAPI]
) -> None:
    """A route whose answer is validated against its model (the search routes write theirs
    as built), given a value its model refuses."""
    value = "bob@example.com"
    app = base_app()

    class Scored(BaseModel):
        score: float

    @app.get("/scored", response_model=Scored)
    def scored() -> dict[str, Any]:
        return {"score": value}

    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/scored", headers={HEADER: "req_bad"})
    assert response.status_code == 500 and value not in response.text
    assert response.json()["errors"][0]["code"] == "INTERNAL_ERROR"
    text = caplog.text
    assert value not in text
    assert "req_bad" in text and "response.score (float_parsing)" in text


def test_search_answers_are_the_documented_shape_and_carry_the_request_id_to_es(
    open_app: Callable[..., FastAPI],
) -> None:
    hit = {"_id": "1", "_score": 2.5, "_source": {"name": "kettle"}, "highlight": {"name": ["k"]}}
    brand = {"buckets": [{"key": "Acme", "doc_count": 1}]}
    answer = {"hits": {"total": {"value": 1}, "hits": [hit]}, "aggregations": {"brand": brand}}
    es = _FailingEs(answer)
    response = _app_with(open_app, es).get(
        "/api/v1/indexes/products/search", params={"q": "kettle"}, headers={HEADER: "req_ok"}
    )
    assert response.status_code == 200
    document = SearchResponse.model_validate_json(response.content)
    assert document.data.facets["category"] == []  # declared, no buckets in the answer
    assert document.data.hits[0].highlights == {"name": ["k"]}
    assert response.json()["meta"]["timestamp"].endswith("Z")
    assert es.options_seen == [{"opaque_id": "req_ok"}]
    empty = _app_with(open_app, _FailingEs({})).get(
        "/api/v1/indexes/products/suggestions?prefix=ke"
    )
    assert SuggestionsResponse.model_validate_json(empty.content).data == []
