"""Search requests: validated parameters into a query body, responses into plain results.

User text only ever becomes the `query` string of a `multi_match` (analysed as words, never
parsed as query syntax), and filters only name whitelisted fields, so nothing a client sends
becomes raw query DSL. Shared by `headwater search` and the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

MAX_WINDOW = 10_000  # Elasticsearch's default index.max_result_window


class SearchError(ValueError):
    """A request that cannot be run; the message says what to change."""


@dataclass(frozen=True)
class Searchable:
    fields: tuple[str, ...]
    filters: dict[str, type]
    facets: tuple[str, ...]
    highlight: tuple[str, ...]
    columns: tuple[str, ...]


SEARCHABLE: dict[str, Searchable] = {
    "products": Searchable(
        fields=("name^3", "brand.text^2", "category^2", "description", "sku"),
        filters={"category": str, "brand": str, "id": int, "sku": str},
        facets=("category", "brand"),
        highlight=("name", "description"),
        columns=("id", "name", "category", "brand", "price", "stock", "review_count", "rating_avg"),
    ),
    "reviews": Searchable(
        fields=("text",),
        filters={"rating": int, "product_id": int, "customer_id": int, "id": int},
        facets=("rating",),
        highlight=("text",),
        columns=("id", "product_id", "customer_id", "rating", "text"),
    ),
}


def searchable(index: str) -> Searchable:
    try:
        return SEARCHABLE[index]
    except KeyError:
        raise SearchError(f"index must be one of {', '.join(SEARCHABLE)}; got {index!r}") from None


def parse_filters(index: str, raw: Sequence[str]) -> dict[str, list[Any]]:
    """`field=value` (or `field:value`) pairs; repeating a field means any of the values."""
    allowed = searchable(index).filters
    parsed: dict[str, list[Any]] = {}
    for item in raw:
        sep = "=" if "=" in item else ":"
        name, found, value = item.partition(sep)
        name, value = name.strip(), value.strip()
        if not found or not name or not value:
            raise SearchError(f"filter must look like field=value; got {item!r}")
        if name not in allowed:
            raise SearchError(
                f"cannot filter {index} on {name!r}; filterable: {', '.join(sorted(allowed))}"
            )
        try:
            parsed.setdefault(name, []).append(allowed[name](value))
        except ValueError:
            raise SearchError(f"filter {name} needs a whole number; got {value!r}") from None
    return parsed


def build_query(
    index: str, q: str, filters: dict[str, list[Any]], page: int, size: int, max_size: int = 100
) -> dict[str, Any]:
    spec = searchable(index)
    if page < 1:
        raise SearchError(f"page starts at 1; got {page}")
    if not 1 <= size <= max_size:
        raise SearchError(f"size must be between 1 and {max_size}; got {size}")
    if page * size > MAX_WINDOW:
        raise SearchError(f"page * size must be at most {MAX_WINDOW}; got {page * size}")
    text = q.strip()
    if len(text) > 500:
        raise SearchError("q must be at most 500 characters")
    must: dict[str, Any] = (
        {"multi_match": {"query": text, "fields": list(spec.fields), "operator": "and"}}
        if text
        else {"match_all": {}}
    )
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "must": [must],
                "filter": [{"terms": {name: values}} for name, values in filters.items()],
            }
        },
        "from": (page - 1) * size,
        "size": size,
        "track_total_hits": True,
        "aggs": {facet: {"terms": {"field": facet, "size": 20}} for facet in spec.facets},
        "_source": {"excludes": ["review_state", "product_lsn", "live"]},
    }
    if text:
        body["highlight"] = {"fields": {f: {} for f in spec.highlight}}
    else:
        body["sort"] = [{"id": "asc"}]
    return body


def shape_response(response: dict[str, Any], page: int, size: int) -> dict[str, Any]:
    hits = response["hits"]
    return {
        "total": hits["total"]["value"],
        "page": page,
        "size": size,
        "hits": [
            {
                "id": hit["_id"],
                "score": hit.get("_score"),
                "source": hit["_source"],
                "highlights": hit.get("highlight", {}),
            }
            for hit in hits["hits"]
        ],
        "facets": {
            name: [{"value": b["key"], "count": b["doc_count"]} for b in agg["buckets"]]
            for name, agg in response.get("aggregations", {}).items()
        },
    }


def search(
    es: Elasticsearch,
    alias: str,
    index: str,
    q: str = "",
    filters: Sequence[str] = (),
    page: int = 1,
    size: int = 10,
    max_size: int = 100,
) -> dict[str, Any]:
    body = build_query(index, q, parse_filters(index, filters), page, size, max_size)
    return shape_response(es.search(index=alias, **client_params(body)).body, page, size)


def client_params(body: dict[str, Any]) -> dict[str, Any]:
    """A query body as elasticsearch-py keyword arguments (`from` and `_source` are renamed)."""
    params = dict(body)
    params["from_"] = params.pop("from")
    params["source"] = params.pop("_source")
    return params
