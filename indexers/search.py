"""Search requests on a declared index: validated parameters into a query body, responses into
plain results, and prefix suggestions.

User text only ever becomes the `query` string of a `multi_match` (analysed as words, never
parsed as query syntax), and filters and sort keys only name the declaration's own fields, so
nothing a client sends becomes raw query DSL. Queries tolerate typos (fuzziness AUTO) and
match the last word as a prefix. Shared by `headwater search` and the HTTP API.

A refused request raises a `SearchError` naming the parameter at fault; its kind says whether
the parameter is wrong (`BadFilter`, `BadSort`, `BadPaging`) or the index cannot do what was
asked (`NotSupported`), so the API can answer each with its own status.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from elasticsearch import AsyncElasticsearch, Elasticsearch

from headwater.pipelines.declarations import IndexDeclaration
from indexers.documents import INTERNAL
from indexers.mapping import SUGGEST, filter_path

MAX_WINDOW = 10_000  # Elasticsearch's default index.max_result_window
# Bounds of what a client sends, checked here and declared by the HTTP API's parameters.
MAX_QUERY_LENGTH = 500
MAX_SORT_LENGTH = 500
MAX_PREFIX_LENGTH = 100
MAX_SUGGESTIONS = 20
# Filters are repeated in every paging link, so their number and size are bounded too.
MAX_FILTERS = 50
MAX_FILTER_LENGTH = 200
# What of Elasticsearch's answers is read (`filter_path`): less to send, parse and keep.
# Elasticsearch then leaves out empty arrays (no hits, a facet without buckets) and objects.
SEARCH_FILTER_PATH = ",".join(
    (
        "hits.total.value",
        "hits.hits._id",
        "hits.hits._score",
        "hits.hits._source",
        "hits.hits.highlight",
        "aggregations.*.buckets.key",
        "aggregations.*.buckets.doc_count",
    )
)
SUGGEST_FILTER_PATH = "hits.hits._source"


class SearchError(ValueError):
    """A request that cannot be run; the message says what to change, `parameter` which
    parameter of the request is at fault."""

    parameter = ""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        if parameter is not None:
            self.parameter = parameter


class BadFilter(SearchError):
    parameter = "filter"


class BadSort(SearchError):
    parameter = "sort"


class BadPaging(SearchError):
    """A page beyond the result window, or a page size out of bounds."""

    parameter = "page"


class NotSupported(SearchError):
    """The parameters are well formed, but this index declares nothing that could answer them."""


R = TypeVar("R")


def per_declaration(derive: Callable[[IndexDeclaration], R]) -> Callable[[IndexDeclaration], R]:
    """`derive`, computed once per declaration object: what a declaration allows is read on
    every request, and deriving it costs more than the rest of building the query. (Keyed by
    identity, as declarations are not hashable; one is loaded once and never changed.)"""
    cache: dict[int, tuple[weakref.ref[IndexDeclaration], R]] = {}

    @functools.wraps(derive)
    def cached(declaration: IndexDeclaration) -> R:
        found = cache.get(id(declaration))
        if found is None or found[0]() is not declaration:
            found = (weakref.ref(declaration), derive(declaration))
            cache[id(declaration)] = found
        return found[1]

    return cached


# Elasticsearch types whose values sort (doc values): exact values, numbers, dates, booleans.
_SORTABLE_TYPES = frozenset(
    {"keyword", "long", "integer", "short", "byte", "double", "float", "scaled_float"}
    | {"half_float", "date", "boolean"}
)


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


# The whole numbers each Elasticsearch integer type holds (bits of a signed integer).
_INT_BITS = {"long": 64, "integer": 32, "short": 16}


def _whole(es_type: str) -> Callable[[str], int]:
    bound = 2 ** (_INT_BITS[es_type] - 1)

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise BadFilter(f"needs a whole number; got {value!r}") from None
        if not -bound <= number < bound:
            raise BadFilter(
                f"needs a whole number from {-bound} to {bound - 1} ({es_type}); got {value!r}"
            )
        return number

    return parse


def _finite(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadFilter(f"needs a number; got {value!r}") from None
    # NaN and infinities (also from overflow, as 1e999) are not values a field can hold.
    if not math.isfinite(number):
        raise BadFilter(f"needs a finite number; got {value!r}")
    return number


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise BadFilter(f"needs true or false; got {value!r}")
    return value.lower() == "true"


def _parser(es_type: str) -> Callable[[str], Any]:
    if es_type in _INT_BITS:
        return _whole(es_type)
    if es_type in ("double", "float", "scaled_float"):
        return _finite
    if es_type == "boolean":
        return _boolean
    return str


@per_declaration
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


@per_declaration
def sortable(declaration: IndexDeclaration) -> dict[str, str]:
    """Field -> indexed path of every field a client may sort on: the declared sort keys,
    filters and facets (exact values) and the summary figures that are numbers or dates."""
    fields = {
        name: filter_path(f, name)
        for name, f in declaration.fields.items()
        if f.sort or f.filter or f.facet
    }
    for summary in declaration.summaries:
        for name in summary.fields:
            if summary.field_type(name).es.get("type") in _SORTABLE_TYPES:
                fields[name] = name
    return fields


def parse_sort(declaration: IndexDeclaration, raw: str) -> list[dict[str, str]]:
    """`field:asc|desc` (the direction defaults to asc), comma-separated for ties, as
    Elasticsearch sort clauses on the indexed paths; blank means the default order."""
    if len(raw) > MAX_SORT_LENGTH:
        raise BadSort(f"sort must be at most {MAX_SORT_LENGTH} characters")
    allowed = sortable(declaration)
    clauses: list[dict[str, str]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, _, direction = item.partition(":")
        name, direction = name.strip(), direction.strip().lower() or "asc"
        if direction not in ("asc", "desc"):
            raise BadSort(f"sort direction must be asc or desc; got {direction!r} for {name!r}")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadSort(f"cannot sort {declaration.name} on {name!r}; sortable: {known}")
        clauses.append({allowed[name]: direction})
    return clauses


def parse_filters(declaration: IndexDeclaration, raw: Sequence[str]) -> dict[str, list[Any]]:
    """`field=value` (or `field:value`) pairs; repeating a field means any of the values; a
    blank item is no filter (an empty `filter=` in a query string).

    Keys of the result are the indexed paths to filter on.
    """
    if len(raw) > MAX_FILTERS:
        raise BadFilter(f"at most {MAX_FILTERS} filters; got {len(raw)}")
    allowed = searchable(declaration).filters
    parsed: dict[str, list[Any]] = {}
    for item in raw:
        if len(item) > MAX_FILTER_LENGTH:
            raise BadFilter(f"a filter must be at most {MAX_FILTER_LENGTH} characters")
        if not item.strip():
            continue
        sep = "=" if "=" in item else ":"
        name, found, value = item.partition(sep)
        name, value = name.strip(), value.strip()
        if not found or not name or not value:
            raise BadFilter(f"filter must look like field=value; got {item!r}")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadFilter(f"cannot filter {declaration.name} on {name!r}; filterable: {known}")
        path, parse = allowed[name]
        try:
            parsed.setdefault(path, []).append(parse(value))
        except SearchError as exc:
            raise BadFilter(f"filter {name} {exc}") from None
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
    sort: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The query body; `sort` (from `parse_sort`) orders the hits instead of relevance (with
    text) or the default key (without), which stays as the tie-breaker so pages are stable."""
    spec = searchable(declaration)
    if page < 1:
        raise BadPaging(f"page starts at 1; got {page}")
    if not 1 <= size <= max_size:
        raise BadPaging(f"size must be between 1 and {max_size}; got {size}", "size")
    if page * size > MAX_WINDOW:
        raise BadPaging(
            f"page * size must be at most {MAX_WINDOW} (the deepest result reachable); "
            f"got {page} * {size} = {page * size}"
        )
    text = q.strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchError(f"q must be at most {MAX_QUERY_LENGTH} characters", "q")
    if text and not spec.fields:
        raise NotSupported(
            f"{declaration.name} declares no searchable field; use filters only", "q"
        )
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
    if sort:
        keys = [path for clause in sort for path in clause]
        body["sort"] = [*sort, *([] if spec.sort in keys else [{spec.sort: "asc"}])]
    elif not text:
        body["sort"] = [{spec.sort: "asc"}]
    return body


def shape_response(
    response: dict[str, Any], page: int, size: int, facets: Sequence[str] = ()
) -> dict[str, Any]:
    """Elasticsearch's answer (whole, or cut by `SEARCH_FILTER_PATH`) as plain results; every
    facet of `facets` is there, with no buckets if the answer had none."""
    hits = response.get("hits", {})
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in facets} | {
        name: [{"value": b["key"], "count": b["doc_count"]} for b in agg.get("buckets", ())]
        for name, agg in response.get("aggregations", {}).items()
    }
    return {
        "total": hits.get("total", {}).get("value", 0),
        "page": page,
        "size": size,
        "hits": [
            {
                "id": hit["_id"],
                "score": hit.get("_score"),
                "source": hit.get("_source", {}),
                "highlights": hit.get("highlight", {}),
            }
            for hit in hits.get("hits", ())
        ],
        "facets": found,
    }


def search_body(
    declaration: IndexDeclaration,
    q: str = "",
    filters: Sequence[str] = (),
    page: int = 1,
    size: int = 10,
    max_size: int = 100,
    sort: str = "",
) -> dict[str, Any]:
    """The query body of a search request as clients send it (raw filters and sort)."""
    return build_query(
        declaration,
        q,
        parse_filters(declaration, filters),
        page,
        size,
        max_size,
        parse_sort(declaration, sort),
    )


def search(
    es: Elasticsearch,
    alias: str,
    declaration: IndexDeclaration,
    q: str = "",
    filters: Sequence[str] = (),
    page: int = 1,
    size: int = 10,
    max_size: int = 100,
    sort: str = "",
) -> dict[str, Any]:
    body = search_body(declaration, q, filters, page, size, max_size, sort)
    response = es.search(index=alias, filter_path=SEARCH_FILTER_PATH, **client_params(body))
    return shape_response(response.body, page, size, tuple(searchable(declaration).facets))


async def search_async(
    es: AsyncElasticsearch,
    alias: str,
    declaration: IndexDeclaration,
    q: str = "",
    filters: Sequence[str] = (),
    page: int = 1,
    size: int = 10,
    max_size: int = 100,
    sort: str = "",
) -> dict[str, Any]:
    """`search` with the asyncio client (the HTTP API's)."""
    body = search_body(declaration, q, filters, page, size, max_size, sort)
    response = await es.search(index=alias, filter_path=SEARCH_FILTER_PATH, **client_params(body))
    return shape_response(response.body, page, size, tuple(searchable(declaration).facets))


def suggest_query(declaration: IndexDeclaration, prefix: str, size: int) -> dict[str, Any]:
    spec = searchable(declaration)
    if not spec.suggest:
        raise NotSupported(f"{declaration.name} declares no suggest field", "prefix")
    text = prefix.strip()
    if not text or len(text) > MAX_PREFIX_LENGTH:
        raise SearchError(
            f"prefix must be 1 to {MAX_PREFIX_LENGTH} characters, not only spaces", "prefix"
        )
    if not 1 <= size <= MAX_SUGGESTIONS:
        raise BadPaging(f"size must be between 1 and {MAX_SUGGESTIONS}; got {size}", "size")
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
    body = suggest_body(declaration, prefix, size)
    response = es.search(index=alias, filter_path=SUGGEST_FILTER_PATH, **client_params(body))
    return suggestions(declaration, response.body.get("hits", {}).get("hits", []), size)


async def suggest_async(
    es: AsyncElasticsearch, alias: str, declaration: IndexDeclaration, prefix: str, size: int = 5
) -> list[str]:
    """`suggest` with the asyncio client (the HTTP API's)."""
    body = suggest_body(declaration, prefix, size)
    response = await es.search(index=alias, filter_path=SUGGEST_FILTER_PATH, **client_params(body))
    return suggestions(declaration, response.body.get("hits", {}).get("hits", []), size)


def suggest_body(declaration: IndexDeclaration, prefix: str, size: int = 5) -> dict[str, Any]:
    """The query body of a suggestions request."""
    return {**suggest_query(declaration, prefix, size), "from": 0}


def suggestions(
    declaration: IndexDeclaration, hits: Sequence[dict[str, Any]], size: int
) -> list[str]:
    """The distinct suggest-field values of `hits`, in order, at most `size`."""
    fields = searchable(declaration).suggest
    seen: dict[str, None] = {}
    for hit in hits:
        for name in fields:
            value = hit.get("_source", {}).get(name)
            if isinstance(value, str):
                seen.setdefault(value, None)
    return list(seen)[:size]


def client_params(body: dict[str, Any]) -> dict[str, Any]:
    """A query body as elasticsearch-py keyword arguments (`from` and `_source` are renamed)."""
    params = dict(body)
    params["from_"] = params.pop("from")
    params["source"] = params.pop("_source")
    return params
