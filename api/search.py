"""`GET /api/v1/indexes/{index}/search` and `.../suggestions` on any declared index (through
its alias): hits, highlights, the declared facets and total, paged and sorted; prefix
completions. Refusals are raised (`indexers.search.SearchError`, `UnknownIndex`) and shaped by
`api.errors`."""

# No `from __future__ import annotations`: FastAPI reads the route parameters' annotations,
# which hold the declared indexes and the page size's bound and default of the router being
# built, at definition time.

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from api import envelope, errors
from api.settings import ApiSettings
from indexers.declared import DeclaredIndex, pick
from indexers.search import (
    MAX_FILTER_LENGTH,
    MAX_FILTERS,
    MAX_PREFIX_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_SORT_LENGTH,
    MAX_SUGGESTIONS,
    MAX_WINDOW,
    search,
    suggest,
)


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
    routes = APIRouter(prefix="/indexes", tags=["search"])
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
    def search_index(
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
    ) -> dict[str, Any]:
        """One page of the hits of `q` and the filters, with the declared facets."""
        target = pick(indexes, index)
        found = search(
            request.app.state.es,
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
        return envelope.paged(
            request, result, page=page, size=size, total=found["total"], max_window=MAX_WINDOW
        )

    @routes.get(
        "/{index}/suggestions",
        response_model=SuggestionsResponse,
        responses=errors.responses(400, 404, 422, 503),
    )
    def suggest_index(
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
    ) -> dict[str, Any]:
        """Completions of what was typed so far, from the index's suggest fields."""
        target = pick(indexes, index)
        found = suggest(request.app.state.es, target.alias, target.shaper.declaration, prefix, size)
        return envelope.ok(request, found)

    return routes
