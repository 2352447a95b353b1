"""`GET /search` and `GET /suggest` on any declared index (through its alias): hits,
highlights, the declared facets and total; prefix completions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from indexers.declared import UnknownIndex, pick
from indexers.search import SearchError, search, suggest

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
    index: Annotated[str, Query(description="A declared index, e.g. products.")] = "products",
    filter: Annotated[
        list[str] | None,
        Query(description="field=value (e.g. category=books); repeat for more."),
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    state = request.app.state
    try:
        target = pick(state.indexes, index)
        return search(
            state.es,
            target.alias,
            target.shaper.declaration,
            q,
            filter or [],
            page,
            size or state.api.default_size,
            state.api.max_size,
        )
    except (SearchError, UnknownIndex) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


class Suggestions(BaseModel):
    suggestions: list[str]


@router.get("/suggest", response_model=Suggestions)
def suggest_endpoint(
    request: Request,
    prefix: Annotated[str, Query(min_length=1, max_length=100, description="What was typed.")],
    index: Annotated[str, Query(description="A declared index, e.g. products.")] = "products",
    size: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """Completions of what was typed so far, from the index's suggest fields."""
    state = request.app.state
    try:
        target = pick(state.indexes, index)
        found = suggest(state.es, target.alias, target.shaper.declaration, prefix, size)
    except (SearchError, UnknownIndex) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return {"suggestions": found}
