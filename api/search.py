"""`GET /search`: hits, highlights, facets and total from a search index (through its alias)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from indexers.catalog import spec
from indexers.search import SearchError, search

router = APIRouter(tags=["search"])


class Hit(BaseModel):
    id: str
    score: float | None
    source: dict[str, Any]
    highlights: dict[str, list[str]]


class Bucket(BaseModel):
    value: Any
    count: int


class SearchResponse(BaseModel):
    total: int
    page: int
    size: int
    hits: list[Hit]
    facets: dict[str, list[Bucket]]


@router.get("/search", response_model=SearchResponse)
def search_endpoint(
    request: Request,
    q: Annotated[str, Query(max_length=500, description="Words to look for.")] = "",
    index: Annotated[str, Query(description="products or reviews.")] = "products",
    filter: Annotated[
        list[str] | None,
        Query(description="field=value (e.g. category=books); repeat for more."),
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    state = request.app.state
    try:
        alias = spec(index, state.streams.index_prefix).alias
        return search(
            state.es,
            alias,
            index,
            q,
            filter or [],
            page,
            size or state.api.default_size,
            state.api.max_size,
        )
    except (SearchError, ValueError) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
