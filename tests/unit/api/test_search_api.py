"""The search API's parameter handling and the query it builds, without Elasticsearch."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is what we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api.settings import ApiSettings
from headwater.pipelines.declarations import Pipelines
from indexers.search import (
    MAX_FILTER_LENGTH,
    MAX_FILTERS,
    BadFilter,
    BadSort,
    SearchError,
    build_query,
    parse_filters,
    parse_sort,
    sortable,
)

SEARCH = "/api/v1/indexes/{index}/search"


@pytest.fixture
def client(open_app: Callable[..., FastAPI]) -> TestClient:
    return TestClient(open_app())


@pytest.mark.parametrize(
    ("index", "params", "code", "parameter", "message"),
    [
        ("products", {"filter": "colour=red"}, "BAD_FILTER", "filter", "on 'colour'"),
        ("products", {"filter": "category"}, "BAD_FILTER", "filter", "like field=value"),
        ("reviews", {"filter": "rating=five"}, "BAD_FILTER", "filter", "needs a whole number"),
        ("products", {"filter": "price=nan"}, "BAD_FILTER", "filter", "needs a finite number"),
        ("products", {"filter": "price=1e999"}, "BAD_FILTER", "filter", "needs a finite number"),
        ("products", {"filter": "price=-inf"}, "BAD_FILTER", "filter", "needs a finite number"),
        ("products", {"filter": "id=9223372036854775808"}, "BAD_FILTER", "filter", "(long)"),
        ("products", {"filter": "stock=2147483648"}, "BAD_FILTER", "filter", "(integer)"),
        ("products", {"sort": "colour:asc"}, "BAD_SORT", "sort", "cannot sort products on"),
        ("products", {"sort": "price:up"}, "BAD_SORT", "sort", "asc or desc"),
        ("products", {"size": "0"}, "VALIDATION_ERROR", "size", "size"),
        ("products", {"size": "101"}, "VALIDATION_ERROR", "size", "less than or equal to 100"),
        ("products", {"page": "0"}, "VALIDATION_ERROR", "page", "page"),
        ("products", {"page": "abc"}, "VALIDATION_ERROR", "page", "page"),
        ("products", {"page": "200", "size": "100"}, "VALIDATION_ERROR", "page", "at most 10000"),
        ("products", {"q": "x" * 501}, "VALIDATION_ERROR", "q", "q"),
        ("products", {"filter": ["brand=a"] * 51}, "VALIDATION_ERROR", "filter", "at most 50"),
        ("products", {"filter": "brand=" + "a" * 195}, "VALIDATION_ERROR", "filter", "200"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    client: TestClient,
    index: str,
    params: dict[str, str | list[str]],
    code: str,
    parameter: str,
    message: str,
) -> None:
    response = client.get(SEARCH.format(index=index), params=params)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["status"], error["code"]) == ("400", code)
    assert error["source"] == {"parameter": parameter}
    assert message in error["detail"]


def test_an_unknown_index_is_404_naming_the_known_ones(client: TestClient) -> None:
    response = client.get(SEARCH.format(index="orders"))
    assert response.status_code == 404
    (error,) = response.json()["errors"]
    assert error["code"] == "UNKNOWN_INDEX"
    assert error["detail"] == "unknown index 'orders'; known: products, reviews"


def test_openapi_document_lists_the_versioned_routes_health_and_metrics(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    assert document["info"]["version"] == "1.0.0"
    paths = document["paths"]
    assert {
        "/api/v1/indexes/{index}/search",
        "/api/v1/indexes/{index}/suggestions",
        "/api/v1/dashboards",
        "/api/v1/dashboards/{name}",
        "/api/v1/dashboards/{name}/events",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/health/detailed",
    } == paths.keys()
    search = paths["/api/v1/indexes/{index}/search"]["get"]
    assert set(search["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "422",
        "429",
        "500",
        "503",
    }
    assert search["security"] == [{"bearer": []}, {"apiKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert search["responses"]["401"]["headers"]["WWW-Authenticate"]
    assert search["responses"]["429"]["headers"]["Retry-After"]
    # The probes are open; the detailed health is not.
    assert "security" not in paths["/health/ready"]["get"]
    assert paths["/health/detailed"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    error = {"$ref": "#/components/schemas/ErrorDocument"}
    assert search["responses"]["400"]["content"]["application/json"]["schema"] == error
    # FastAPI's own validation error shape is never sent, so it is not documented.
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "422" not in paths["/api/v1/dashboards/{name}"]["get"]["responses"]


def test_the_old_unversioned_routes_are_gone(client: TestClient) -> None:
    for path in ("/search", "/suggest", "/dashboards", "/dashboards/sales"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"


def test_a_trailing_slash_is_a_404_error_document_not_a_redirect(client: TestClient) -> None:
    for path in ("/api/v1/dashboards/", "/health/live/", "/api/v1/indexes/products/search/"):
        response = client.get(path, follow_redirects=False, headers={"host": "evil.example"})
        assert response.status_code == 404 and "location" not in response.headers
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"


def test_live(client: TestClient) -> None:
    body = client.get("/health/live").json()
    assert body["data"] == {"status": "live"}
    assert body["links"] == {"self": "/health/live"} and body["meta"]["version"] == "v1"


def test_a_wrong_method_is_405_with_the_allowed_ones(client: TestClient) -> None:
    response = client.delete("/api/v1/dashboards")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    (error,) = response.json()["errors"]
    assert error["code"] == "METHOD_NOT_ALLOWED" and "allowed: GET" in error["detail"]


def test_sortable_fields_come_from_the_declaration(shop: Pipelines) -> None:
    products = shop.index("products")
    fields = sortable(products)
    # Searched text sorts on its keyword sub-field; summary figures are numbers.
    assert fields["name"] == "name.raw" and fields["category"] == "category.raw"
    assert fields["price"] == "price" and fields["review_count"] == "review_count"
    assert "description" not in fields  # searched only: no exact value to sort on
    assert parse_sort(products, "price:desc, name") == [{"price": "desc"}, {"name.raw": "asc"}]
    assert parse_sort(products, "") == parse_sort(products, " , ") == []
    with pytest.raises(BadSort, match="'description'; sortable: brand, category"):
        parse_sort(products, "description:asc")
    with pytest.raises(BadSort, match="asc or desc"):
        parse_sort(products, "price:sideways")


def test_a_sort_replaces_relevance_and_keeps_the_key_as_tie_breaker(shop: Pipelines) -> None:
    products = shop.index("products")
    by_price = parse_sort(products, "price:desc")
    assert build_query(products, "kettle", {}, 1, 10, sort=by_price)["sort"] == [
        {"price": "desc"},
        {"id": "asc"},
    ]
    assert "sort" not in build_query(products, "kettle", {}, 1, 10)
    by_id = parse_sort(products, "id:desc")
    assert build_query(products, "", {}, 1, 10, sort=by_id)["sort"] == [{"id": "desc"}]


def test_an_empty_filter_is_no_filter(shop: Pipelines) -> None:
    assert parse_filters(shop.index("products"), ["", "  ", "brand=Acme"]) == {
        "brand.raw": ["Acme"]
    }


def test_number_filters_hold_only_what_the_field_can(shop: Pipelines) -> None:
    products, reviews = shop.index("products"), shop.index("reviews")
    assert parse_filters(products, ["id=-9223372036854775808", "id=9223372036854775807"]) == {
        "id": [-(2**63), 2**63 - 1]
    }
    assert parse_filters(products, ["price=1e308"]) == {"price": [1e308]}
    for item in ("price=nan", "price=NaN", "price=inf", "price=Infinity", "price=1e999"):
        with pytest.raises(BadFilter, match="finite"):
            parse_filters(products, [item])
    with pytest.raises(BadFilter, match="-9223372036854775808 to 9223372036854775807"):
        parse_filters(products, ["id=-9223372036854775809"])
    assert parse_filters(reviews, ["rating=5"]) == {"rating": [5]}
    with pytest.raises(BadFilter, match=r"\(short\)"):
        parse_filters(reviews, ["rating=32768"])


def test_filters_are_bounded_in_number_and_length(shop: Pipelines) -> None:
    products = shop.index("products")
    assert parse_filters(products, ["brand=a"] * MAX_FILTERS) == {"brand.raw": ["a"] * 50}
    with pytest.raises(BadFilter, match="at most 50 filters; got 51"):
        parse_filters(products, ["brand=a"] * (MAX_FILTERS + 1))
    with pytest.raises(BadFilter, match="at most 200 characters"):
        parse_filters(products, ["brand=" + "a" * (MAX_FILTER_LENGTH - 5)])


def test_the_document_declares_the_filter_bounds(client: TestClient) -> None:
    search = client.get("/openapi.json").json()["paths"][SEARCH.format(index="{index}")]
    (param,) = [p for p in search["get"]["parameters"] if p["name"] == "filter"]
    array = param["schema"]["anyOf"][0]
    assert array["maxItems"] == MAX_FILTERS == 50
    assert array["items"]["maxLength"] == MAX_FILTER_LENGTH == 200


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


def test_suggestions_need_a_prefix_and_a_suggest_field(client: TestClient) -> None:
    suggestions = "/api/v1/indexes/{index}/suggestions"
    for blank in ("", "   "):
        response = client.get(suggestions.format(index="products"), params={"prefix": blank})
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"] == {"parameter": "prefix"}
    # Well formed, but reviews declares nothing to complete from: 422.
    response = client.get(suggestions.format(index="reviews"), params={"prefix": "ke"})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["code"] == "UNPROCESSABLE" and "no suggest field" in error["detail"]


def test_size_is_a_plain_integer_defaulting_to_the_settings(client: TestClient) -> None:
    search = client.get("/openapi.json").json()["paths"][SEARCH.format(index="{index}")]
    (param,) = [p for p in search["get"]["parameters"] if p["name"] == "size"]
    assert param["schema"]["type"] == "integer" and "anyOf" not in param["schema"]
    assert param["schema"]["default"] == ApiSettings().default_size == 10

    class Empty:
        def options(self, **options: Any) -> Any:
            return self

        async def search(self, **params: Any) -> Any:
            assert params["size"] == 10
            # As Elasticsearch cuts it with filter_path: no empty arrays.
            return SimpleNamespace(body={"hits": {"total": {"value": 0}}})

    client.app.state.search_es = Empty()  # type: ignore[attr-defined]
    body = client.get(SEARCH.format(index="products")).json()
    assert body["meta"]["page"]["size"] == 10 and body["links"]["self"].endswith("size=10")
    assert body["data"] == {"total": 0, "hits": [], "facets": {"category": [], "brand": []}}
