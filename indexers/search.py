"""Search requests on a declared index: validated parameters into a query body, responses into
plain results, and prefix suggestions.

User text only ever becomes the `query` string of a `multi_match` (analysed as words, never
parsed as query syntax), and filters only name the declaration's filter and facet fields, so
nothing a client sends becomes raw query DSL. Queries tolerate typos (fuzziness AUTO) and
match the last word as a prefix. Shared by `headwater search` and the HTTP API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from headwater.pipelines.declarations import IndexDeclaration
from indexers.documents import INTERNAL
from indexers.mapping import SUGGEST, filter_path

MAX_WINDOW = 10_000  # Elasticsearch's default index.max_result_window


class SearchError(ValueError):
    """A request that cannot be run; the message says what to change."""


@dataclass(frozen=True)
class Searchable:
    """What a declaration lets clients do: search fields (with weights), filters, facets."""

    fields: tuple[str, ...]
    filters: dict[str, tuple[str, Callable[[str], Any]]]  # field -> (indexed path, parser)
    facets: dict[str, str]  # field -> indexed path
    highlight: tuple[str, ...]
    suggest: tuple[str, ...]
    sort: str
    columns: tuple[str, ...]


def _number(kind: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return int(value) if kind == "int" else float(value)
        except ValueError:
            what = "a whole number" if kind == "int" else "a number"
            raise SearchError(f"needs {what}; got {value!r}") from None

    return parse


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise SearchError(f"needs true or false; got {value!r}")
    return value.lower() == "true"


def _parser(es_type: str) -> Callable[[str], Any]:
    if es_type in ("long", "integer", "short"):
        return _number("int")
    if es_type in ("double", "float", "scaled_float"):
        return _number("float")
    if es_type == "boolean":
        return _boolean
    return str


def searchable(declaration: IndexDeclaration) -> Searchable:
    fields = declaration.fields
    search = tuple(
        f"{name}^{f.weight:g}" if f.weight != 1 else name for name, f in fields.items() if f.search
    )
    filters = {
        name: (filter_path(f, name), _parser(str(f.column_type.es.get("type"))))
        for name, f in fields.items()
        if f.filter or f.facet
    }
    facets = {name: filter_path(f, name) for name, f in fields.items() if f.facet}
    sortable = [name for name, f in fields.items() if f.sort]
    first_id = declaration.id[0]
    return Searchable(
        fields=search,
        filters=filters,
        facets=facets,
        highlight=tuple(name for name, f in fields.items() if f.search),
        suggest=tuple(name for name, f in fields.items() if f.suggest),
        sort=filter_path(fields[first_id], first_id)
        if first_id in sortable or not sortable
        else filter_path(fields[sortable[0]], sortable[0]),
        columns=declaration.columns or declaration.document_fields[:8],
    )


def parse_filters(declaration: IndexDeclaration, raw: Sequence[str]) -> dict[str, list[Any]]:
    """`field=value` (or `field:value`) pairs; repeating a field means any of the values.

    Keys of the result are the indexed paths to filter on.
    """
    allowed = searchable(declaration).filters
    parsed: dict[str, list[Any]] = {}
    for item in raw:
        sep = "=" if "=" in item else ":"
        name, found, value = item.partition(sep)
        name, value = name.strip(), value.strip()
        if not found or not name or not value:
            raise SearchError(f"filter must look like field=value; got {item!r}")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise SearchError(f"cannot filter {declaration.name} on {name!r}; filterable: {known}")
        path, parse = allowed[name]
        try:
            parsed.setdefault(path, []).append(parse(value))
        except SearchError as exc:
            raise SearchError(f"filter {name} {exc}") from None
    return parsed


def text_query(spec: Searchable, text: str) -> dict[str, Any]:
    """Every word must match some search field, allowing typos; the last word may be a prefix."""
    fields = list(spec.fields)
    return {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": text,
                        "fields": fields,
                        "operator": "and",
                        "fuzziness": "AUTO",
                        "prefix_length": 1,
                    }
                },
                {
                    "multi_match": {
                        "query": text,
                        "fields": fields,
                        "operator": "and",
                        "type": "bool_prefix",
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def build_query(
    declaration: IndexDeclaration,
    q: str,
    filters: dict[str, list[Any]],
    page: int,
    size: int,
    max_size: int = 100,
) -> dict[str, Any]:
    spec = searchable(declaration)
    if page < 1:
        raise SearchError(f"page starts at 1; got {page}")
    if not 1 <= size <= max_size:
        raise SearchError(f"size must be between 1 and {max_size}; got {size}")
    if page * size > MAX_WINDOW:
        raise SearchError(f"page * size must be at most {MAX_WINDOW}; got {page * size}")
    text = q.strip()
    if len(text) > 500:
        raise SearchError("q must be at most 500 characters")
    if text and not spec.fields:
        raise SearchError(f"{declaration.name} declares no searchable field; use filters only")
    must = text_query(spec, text) if text else {"match_all": {}}
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "must": [must],
                "filter": [{"terms": {path: values}} for path, values in filters.items()],
            }
        },
        "from": (page - 1) * size,
        "size": size,
        "track_total_hits": True,
        "aggs": {
            name: {"terms": {"field": path, "size": 20}} for name, path in spec.facets.items()
        },
        "_source": {"excludes": list(INTERNAL)},
    }
    if text:
        body["highlight"] = {"fields": {f: {} for f in spec.highlight}}
    else:
        body["sort"] = [{spec.sort: "asc"}]
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
    declaration: IndexDeclaration,
    q: str = "",
    filters: Sequence[str] = (),
    page: int = 1,
    size: int = 10,
    max_size: int = 100,
) -> dict[str, Any]:
    body = build_query(declaration, q, parse_filters(declaration, filters), page, size, max_size)
    return shape_response(es.search(index=alias, **client_params(body)).body, page, size)


def suggest_query(declaration: IndexDeclaration, prefix: str, size: int) -> dict[str, Any]:
    spec = searchable(declaration)
    if not spec.suggest:
        raise SearchError(f"{declaration.name} declares no suggest field")
    text = prefix.strip()
    if not text or len(text) > 100:
        raise SearchError("prefix must be 1 to 100 characters")
    if not 1 <= size <= 20:
        raise SearchError(f"size must be between 1 and 20; got {size}")
    return {
        "query": {
            "multi_match": {
                "query": text,
                "operator": "and",
                "fields": [f"{f}.{SUGGEST}" for f in spec.suggest],
            }
        },
        "size": size,
        "_source": list(spec.suggest),
    }


def suggest(
    es: Elasticsearch, alias: str, declaration: IndexDeclaration, prefix: str, size: int = 5
) -> list[str]:
    """Distinct values of the suggest fields that start with the words typed so far."""
    body = suggest_query(declaration, prefix, size)
    hits = es.search(index=alias, **client_params({**body, "from": 0})).body["hits"]["hits"]
    fields = searchable(declaration).suggest
    seen: dict[str, None] = {}
    for hit in hits:
        for name in fields:
            value = hit["_source"].get(name)
            if isinstance(value, str):
                seen.setdefault(value, None)
    return list(seen)[:size]


def client_params(body: dict[str, Any]) -> dict[str, Any]:
    """A query body as elasticsearch-py keyword arguments (`from` and `_source` are renamed)."""
    params = dict(body)
    params["from_"] = params.pop("from")
    params["source"] = params.pop("_source")
    return params
