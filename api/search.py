"""`GET /api/v1/indexes/{index}/search` and `.../suggestions` on any declared index (through
its alias): hits, highlights, the declared facets and total, paged and sorted; prefix
completions. Refusals are raised (`indexers.search.SearchError`, `UnknownIndex`) and shaped by
`api.errors`.

The hot path of the service, so: the asyncio Elasticsearch client (no thread per request),
only the parts of Elasticsearch's answers that are read (`filter_path`), answers written with
orjson without validating them again (they are built here, in the shape of the documented
models), and each Elasticsearch request labelled with the request id (`X-Opaque-Id`, in
Elasticsearch's tasks and slow logs)."""

# No `from __future__ import annotations`: FastAPI reads the route parameters' annotations,
# which hold the declared indexes and the page size's bound and default of the router being
# built, at definition time.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer
from fastapi import APIRouter, FastAPI, Path, Query, Request
from pydantic import BaseModel, Field

from api import envelope, errors, request_id
from api.settings import ApiSettings
from headwater.settings import ElasticsearchSettings
from indexers.declared import DeclaredIndex, pick
from indexers.search import (
    MAX_FILTER_LENGTH,
    MAX_FILTERS,
    MAX_PREFIX_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_SORT_LENGTH,
    MAX_SUGGESTIONS,
    MAX_WINDOW,
    search_async,
    suggest_async,
)

# Connections kept to each Elasticsearch node: above the concurrent requests one process
# serves, so none waits for a connection.
CONNECTIONS = 32


def client(es: ElasticsearchSettings, timeout_s: float = 10.0) -> AsyncElasticsearch:
    """The asyncio client of the search routes (aiohttp, orjson); `app.state.search_es`."""
    return AsyncElasticsearch(
        es.url,
        **es.client_options(),
        request_timeout=timeout_s,
        connections_per_node=CONNECTIONS,
        serializer=OrjsonSerializer(),
    )


def _es(request: Request) -> AsyncElasticsearch:
    """The app's client, its requests labelled with this request's id."""
    es: AsyncElasticsearch = request.app.state.search_es
    return es.options(opaque_id=request_id.of(request))


class Hit(BaseModel):
    id: str
    score: float | None
    source: dict[str, Any]
    highlights: dict[str, list[str]]


class Bucket(BaseModel):
    value: Any
    count: int


class SearchResult(BaseModel):
    total: int
    hits: list[Hit]
    facets: dict[str, list[Bucket]]


class SearchResponse(envelope.PagedEnvelope[SearchResult]):
    pass


class SuggestionsResponse(envelope.Envelope[list[str]]):
    pass


def router(indexes: dict[str, DeclaredIndex], api: ApiSettings) -> APIRouter:
    """The search routes over `indexes`; `api` bounds the page size and gives its default."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.search_es.close()

    routes = APIRouter(prefix="/indexes", tags=["search"], lifespan=lifespan)
    # Documented as the declared names; any other answers 404 UNKNOWN_INDEX.
    Index = Annotated[
        str,
        Path(description="A declared index.", json_schema_extra={"enum": sorted(indexes)}),
    ]

    @routes.get(
        "/{index}/search",
        response_model=SearchResponse,
        responses=errors.responses(400, 404, 422, 503),
    )
    async def search_index(
        request: Request,
        index: Index,
        q: Annotated[
            str, Query(max_length=MAX_QUERY_LENGTH, description="Words to look for.")
        ] = "",
        filter: Annotated[
            list[Annotated[str, Field(max_length=MAX_FILTER_LENGTH)]] | None,
            Query(
                max_length=MAX_FILTERS,
                description="field=value (e.g. category=books); repeat for more; "
                "an empty one is no filter.",
            ),
        ] = None,
        page: Annotated[int, Query(ge=1, le=MAX_WINDOW)] = 1,
        size: Annotated[
            int, Query(ge=1, le=api.max_size, description="Hits per page.")
        ] = api.default_size,
        sort: Annotated[
            str,
            Query(
                max_length=MAX_SORT_LENGTH,
                description="field:asc|desc, comma-separated for ties (e.g. price:desc,name); "
                "default: relevance with q, the index's key without.",
            ),
        ] = "",
    ) -> envelope.JSON:
        """One page of the hits of `q` and the filters, with the declared facets."""
        target = pick(indexes, index)
        found = await search_async(
            _es(request),
            target.alias,
            target.shaper.declaration,
            q,
            filter or [],
            page,
            size,
            api.max_size,
            sort,
        )
        result = {"total": found["total"], "hits": found["hits"], "facets": found["facets"]}
        return envelope.JSON(
            envelope.paged(
                request, result, page=page, size=size, total=found["total"], max_window=MAX_WINDOW
            )
        )

    @routes.get(
        "/{index}/suggestions",
        response_model=SuggestionsResponse,
        responses=errors.responses(400, 404, 422, 503),
    )
    async def suggest_index(
        request: Request,
        index: Index,
        prefix: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_PREFIX_LENGTH,
                pattern=r"\S",
                description="What was typed.",
            ),
        ],
        size: Annotated[int, Query(ge=1, le=MAX_SUGGESTIONS)] = 5,
    ) -> envelope.JSON:
        """Completions of what was typed so far, from the index's suggest fields."""
        target = pick(indexes, index)
        declaration = target.shaper.declaration
        found = await suggest_async(_es(request), target.alias, declaration, prefix, size)
        return envelope.JSON(envelope.ok(request, found))

    return routes
