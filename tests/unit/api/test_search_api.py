"""The search API's parameter handling and the query it builds, without Elasticsearch."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is what we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api.app import create_app
from headwater.pipelines.declarations import Pipelines
from indexers.search import SearchError, build_query, parse_filters


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"index": "orders"}, "unknown index 'orders'; known: products, reviews"),
        ({"filter": "colour=red"}, "cannot filter products on 'colour'"),
        ({"filter": "category"}, "filter must look like field=value"),
        ({"index": "reviews", "filter": "rating=five"}, "filter rating needs a whole number"),
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


def test_user_text_is_only_ever_a_match_string(shop: Pipelines) -> None:
    text = '{"script": "x"} OR name:* AND _exists_:price'
    body = build_query(shop.index("products"), text, {}, 1, 10)
    (must,) = body["query"]["bool"]["must"]
    for clause in must["bool"]["should"]:
        assert clause["multi_match"]["query"] == text
        assert set(clause["multi_match"]) <= {
            "query",
            "fields",
            "operator",
            "fuzziness",
            "prefix_length",
            "type",
        }


def test_queries_tolerate_typos_and_match_the_last_word_as_a_prefix(shop: Pipelines) -> None:
    body = build_query(shop.index("products"), "ketle", {}, 1, 10)
    fuzzy, prefix = body["query"]["bool"]["must"][0]["bool"]["should"]
    assert fuzzy["multi_match"]["fuzziness"] == "AUTO"
    assert prefix["multi_match"]["type"] == "bool_prefix"
    assert "name^3" in fuzzy["multi_match"]["fields"]


def test_filters_and_facets_come_from_the_declaration(shop: Pipelines) -> None:
    products = shop.index("products")
    filters = parse_filters(products, ["category=books", "category:toys", "brand=Acme"])
    # Searchable text fields filter on their keyword sub-field.
    assert filters == {"category.raw": ["books", "toys"], "brand.raw": ["Acme"]}
    body = build_query(products, "", filters, 2, 5)
    assert body["query"]["bool"]["filter"] == [
        {"terms": {"category.raw": ["books", "toys"]}},
        {"terms": {"brand.raw": ["Acme"]}},
    ]
    assert body["from"] == 5 and set(body["aggs"]) == {"category", "brand"}
    assert body["aggs"]["brand"]["terms"]["field"] == "brand.raw"
    assert parse_filters(products, ["price=9.5"]) == {"price": [9.5]}
    with pytest.raises(SearchError):
        build_query(products, "", {}, 1, 0)


def test_suggest_needs_a_prefix(client: TestClient) -> None:
    assert client.get("/suggest", params={"prefix": ""}).status_code == 400
    response = client.get("/suggest", params={"prefix": "ke", "index": "reviews"})
    assert response.status_code == 400 and "no suggest field" in response.json()["detail"]
