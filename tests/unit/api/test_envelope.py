"""Success bodies: meta, self links, and the paging links and bounds."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

from api import envelope


def _request(path: str, query: str = "", request_id: str = "req_1") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [],
        "state": {"request_id": request_id},
    }
    return Request(scope)


def _params(link: str | None) -> list[tuple[str, str]]:
    assert link is not None
    return parse_qsl(urlsplit(link).query, keep_blank_values=True)


def test_an_unpaged_answer_has_data_meta_and_self() -> None:
    body = envelope.ok(_request("/api/v1/dashboards", "x=1", "req_abc"), [1], events="/e")
    assert body["data"] == [1]
    assert body["links"] == {"self": "/api/v1/dashboards?x=1", "events": "/e"}
    meta = body["meta"]
    assert meta["requestId"] == "req_abc" and meta["version"] == "v1"
    assert meta["timestamp"].tzinfo is not None


def test_the_last_page_is_the_last_reachable_one() -> None:
    assert envelope.last_page(total=0, size=10, max_window=10_000) == 1
    assert envelope.last_page(total=10, size=10, max_window=10_000) == 1
    assert envelope.last_page(total=11, size=10, max_window=10_000) == 2
    # 25,000 hits at 30 a page: page 333 ends at hit 9,990; page 334 would pass 10,000.
    assert envelope.last_page(total=25_000, size=30, max_window=10_000) == 333


def test_page_links_keep_the_other_parameters_and_set_page_and_size() -> None:
    params = [("q", "tea pot"), ("filter", "brand=Acme"), ("filter", ""), ("page", "2")]
    links = envelope.page_links("/api/v1/indexes/products/search", params, 2, 5, last=4)
    assert links["self"] is not None and links["self"].startswith("/api/v1/indexes/products/")
    assert _params(links["next"]) == [
        ("q", "tea pot"),
        ("filter", "brand=Acme"),
        ("filter", ""),
        ("page", "3"),
        ("size", "5"),
    ]
    assert dict(_params(links["prev"]))["page"] == "1"
    assert dict(_params(links["first"]))["page"] == "1"
    assert dict(_params(links["last"]))["page"] == "4"


def test_the_first_and_last_pages_have_no_prev_and_no_next() -> None:
    first = envelope.page_links("/s", [], 1, 10, last=3)
    assert first["prev"] is None and first["next"] is not None
    last = envelope.page_links("/s", [], 3, 10, last=3)
    assert last["next"] is None and last["prev"] is not None
    # Past the end (the hits shrank since): prev leads back to the last page.
    beyond = envelope.page_links("/s", [], 9, 10, last=3)
    assert beyond["next"] is None and dict(_params(beyond["prev"]))["page"] == "3"


def test_a_paged_answer_says_where_it_is_and_validates() -> None:
    request = _request("/api/v1/indexes/products/search", "q=kettle&size=10&page=2")
    body = envelope.paged(request, {"hits": []}, page=2, size=10, total=35, max_window=10_000)
    assert body["meta"]["page"] == {"number": 2, "size": 10, "totalItems": 35, "totalPages": 4}
    assert dict(_params(body["links"]["next"])) == {"q": "kettle", "page": "3", "size": "10"}
    model = envelope.PagedEnvelope[dict[str, list[int]]].model_validate(body)
    assert model.model_dump(by_alias=True)["links"]["self"] == body["links"]["self"]
