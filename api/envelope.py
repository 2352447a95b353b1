"""The shape of every successful answer: `data`, `meta` (request id, time, API version) and
`links` (`self`, and `first`, `prev`, `next`, `last` for a paged result), as models for the
OpenAPI document and as pure functions that fill them.

Links are relative URLs (path and query), as in the design documents' example, so they hold
behind any proxy that keeps the path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from api import request_id

VERSION = "v1"
PREFIX = f"/api/{VERSION}"

T = TypeVar("T")


class Meta(BaseModel):
    requestId: str
    timestamp: datetime
    version: Literal["v1"]


class PageInfo(BaseModel):
    number: int
    size: int
    totalItems: int
    # The last page a client can reach (paging stops at Elasticsearch's result window).
    totalPages: int


class PagedMeta(Meta):
    page: PageInfo


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")


class PageLinks(Links):
    first: str
    prev: str | None
    next: str | None
    last: str


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta
    links: Links


class PagedEnvelope(BaseModel, Generic[T]):
    data: T
    meta: PagedMeta
    links: PageLinks


class JSON(Response):
    """An answer built in the shape of its route's documented model, written as it is (orjson,
    times in UTC with `Z` as the models write them) without validating it again."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def now() -> datetime:
    return datetime.now(UTC)


def meta(request: Request) -> dict[str, Any]:
    return {"requestId": request_id.of(request), "timestamp": now(), "version": VERSION}


def self_link(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def ok(request: Request, data: Any, **links: str) -> dict[str, Any]:
    """An unpaged answer: `data`, `meta`, and `links` with `self` and any `links` given."""
    return {"data": data, "meta": meta(request), "links": {"self": self_link(request), **links}}


def last_page(total: int, size: int, max_window: int) -> int:
    """The last page holding hits that paging can reach (at least 1, even with no hits)."""
    reachable = min(total, max_window)
    return max(1, min(math.ceil(reachable / size), max_window // size))


def page_links(
    path: str, params: Sequence[tuple[str, str]], page: int, size: int, last: int
) -> dict[str, str | None]:
    """`self`, `first`, `prev`, `next`, `last` for page `page` of `last`: the request's other
    parameters kept (repeated ones too, in order), `page` and `size` set."""
    kept = [(k, v) for k, v in params if k not in ("page", "size")]

    def link(number: int) -> str:
        return f"{path}?{urlencode([*kept, ('page', str(number)), ('size', str(size))])}"

    return {
        "self": link(page),
        "first": link(1),
        "prev": link(min(page - 1, last)) if page > 1 else None,
        "next": link(page + 1) if page < last else None,
        "last": link(last),
    }


def paged(
    request: Request, data: Any, *, page: int, size: int, total: int, max_window: int
) -> dict[str, Any]:
    """A page of a longer result: `meta.page` and the paging links."""
    last = last_page(total, size, max_window)
    params = list(request.query_params.multi_items())
    return {
        "data": data,
        "meta": {
            **meta(request),
            "page": {"number": page, "size": size, "totalItems": total, "totalPages": last},
        },
        "links": page_links(request.url.path, params, page, size, last),
    }
