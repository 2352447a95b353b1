"""The search API's parameter handling and the query it builds, without Elasticsearch."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is what we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api.app import create_app
from indexers.search import SearchError, build_query, parse_filters


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"index": "orders"}, "unknown index"),
        ({"filter": "colour=red"}, "cannot filter products on 'colour'"),
        ({"filter": "category"}, "filter must look like field=value"),
        ({"index": "reviews", "filter": "rating=five"}, "needs a whole number"),
        ({"size": "0"}, "size"),
        ({"size": "1000"}, "size must be between 1 and 100"),
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "200", "size": "100"}, "page * size must be at most"),
        ({"q": "x" * 501}, "q"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_openapi_document_lists_search_and_health(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/health/live", "/health/ready"} <= paths.keys()


def test_live(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}


def test_user_text_is_only_ever_a_match_string() -> None:
    text = '{"script": "x"} OR name:* AND _exists_:price'
    body = build_query("products", text, {}, 1, 10)
    (must,) = body["query"]["bool"]["must"]
    assert must["multi_match"]["query"] == text
    assert set(must["multi_match"]) == {"query", "fields", "operator"}


def test_filters_and_facets() -> None:
    filters = parse_filters("products", ["category=books", "category:toys", "brand=Acme"])
    assert filters == {"category": ["books", "toys"], "brand": ["Acme"]}
    body = build_query("products", "", filters, 2, 5)
    assert body["query"]["bool"]["filter"] == [
        {"terms": {"category": ["books", "toys"]}},
        {"terms": {"brand": ["Acme"]}},
    ]
    assert body["from"] == 5 and set(body["aggs"]) == {"category", "brand"}
    with pytest.raises(SearchError):
        build_query("products", "", {}, 1, 0)
