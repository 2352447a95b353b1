"""Every failure as one error document: `{"errors": [{id, status, code, title, detail, source,
meta}]}`, with the HTTP status it names; the handlers that make it, and its OpenAPI entries.

Which status:
- 400: a parameter is wrong: malformed (not a number, out of bounds, missing; FastAPI's
  validation), or naming what the index does not declare (a filter or sort field), or asking
  for a page beyond the deepest result reachable (page * size over 10,000).
- 404: no such route, index, dashboard or asset. 405: the route exists, not the method.
- 422: the parameters are well formed, but the index cannot answer them (text search on an
  index with no searchable field, suggestions from one with no suggest field, a query
  Elasticsearch refuses to run).
- 503 with Retry-After: Elasticsearch unavailable, the dashboards' updates not read (Kafka
  unreachable), or, for readiness, any dependency.
- 401 with WWW-Authenticate: no credentials, or ones that are not valid (`api.auth`).
- 403: valid credentials without the scope the operation needs.
- 429 with Retry-After: over the caller's rate limit, or too many live streams open.
- 500: anything unexpected, said without internals (they go to the log with the request id).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError as ElasticsearchApiError
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from api import envelope, logs, request_id
from indexers.declared import UnknownIndex
from indexers.search import BadFilter, BadSort, NotSupported, SearchError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
# The code of an error raised only with its HTTP status (an HTTPException, a routing miss).
CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "UPSTREAM_UNAVAILABLE",
}
TITLES = {
    "VALIDATION_ERROR": "Invalid parameter",
    "BAD_FILTER": "Invalid filter",
    "BAD_SORT": "Invalid sort",
    "UNKNOWN_INDEX": "Unknown index",
    "NOT_FOUND": "Not found",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "UNPROCESSABLE": "Cannot be processed",
    "UPSTREAM_UNAVAILABLE": "Service unavailable",
    "INTERNAL_ERROR": "Internal error",
}


class ErrorSource(BaseModel):
    """What in the request the error is about: a query or path parameter, a header, or a JSON
    pointer into the body; empty when it is no single one of them."""

    parameter: str | None = None
    header: str | None = None
    pointer: str | None = None


class ErrorMeta(BaseModel):
    timestamp: str = Field(json_schema_extra={"format": "date-time"})
    requestId: str


class Error(BaseModel):
    id: str
    status: str = Field(pattern=r"^[1-5][0-9][0-9]$")
    code: str
    title: str
    detail: str
    source: ErrorSource
    meta: ErrorMeta


class ErrorDocument(BaseModel):
    errors: list[Error] = Field(min_length=1)


@dataclass(frozen=True)
class Problem:
    """One error of a document, before the request's id and time are added."""

    status: int
    code: str
    detail: str
    source: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES.get(self.code) or _phrase(self.status)


class ApiError(Exception):
    """Raised by a route: answered with its problems (all of one status) and `headers`."""

    def __init__(self, *problems: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(p.detail for p in problems))
        self.problems = problems
        self.headers = headers or {}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def shape(problems: Iterable[Problem], request_id_: str, timestamp: str) -> dict[str, Any]:
    """The error document of `problems`."""
    return {
        "errors": [
            {
                "id": f"err_{uuid.uuid4().hex}",
                "status": str(p.status),
                "code": p.code,
                "title": p.title,
                "detail": p.detail,
                "source": dict(p.source),
                "meta": {"timestamp": timestamp, "requestId": request_id_},
            }
            for p in problems
        ]
    }


def respond(
    request: Request, problems: list[Problem], headers: dict[str, str] | None = None
) -> JSONResponse:
    rid = request_id.of(request)
    timestamp = envelope.now().isoformat().replace("+00:00", "Z")
    return JSONResponse(
        shape(problems, rid, timestamp),
        status_code=problems[0].status,
        headers={**(headers or {}), request_id.HEADER: rid},
    )


def validation_problems(errors: Iterable[Any]) -> list[Problem]:
    """FastAPI's validation errors, one problem each, naming the parameter (or body pointer)."""
    problems = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        where, name = (loc[0], loc[1]) if len(loc) > 1 else ("", loc[0] if loc else "")
        if where == "body":
            source = {"pointer": "/" + "/".join(loc[1:])}
        elif where == "header":
            source = {"header": name}
        else:
            source = {"parameter": name} if name else {}
        detail = f"{name}: {err.get('msg', 'invalid')}" if name else str(err.get("msg"))
        problems.append(Problem(400, "VALIDATION_ERROR", detail, source))
    return problems or [Problem(400, "VALIDATION_ERROR", "invalid request")]


def search_problem(exc: SearchError) -> Problem:
    if isinstance(exc, NotSupported):
        status, code = 422, "UNPROCESSABLE"
    elif isinstance(exc, BadFilter):
        status, code = 400, "BAD_FILTER"
    elif isinstance(exc, BadSort):
        status, code = 400, "BAD_SORT"
    else:
        status, code = 400, "VALIDATION_ERROR"
    return Problem(status, code, str(exc), {"parameter": exc.parameter} if exc.parameter else {})


# What an Elasticsearch error type looks like (`search_phase_execution_exception`); anything
# else in its place (a proxy's page, free text) is not repeated.
_ERROR_TYPE = re.compile(r"[A-Za-z0-9_.]{1,100}")


def elasticsearch_error_type(exc: Exception) -> str | None:
    """The `error.type` of Elasticsearch's JSON answer, or None when there is no such name (a
    connection failure, a body that is not Elasticsearch's JSON)."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) and _ERROR_TYPE.fullmatch(kind) else None


def elasticsearch_problem(exc: Exception) -> tuple[Problem, dict[str, str]]:
    """What to say when Elasticsearch failed: a query it refused is the request's (422);
    anything else means it is unavailable for now (503, try again later)."""
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, ElasticsearchApiError):
        if exc.meta.status == 400:
            # Only the error's type: the rest of the body may be anything (the query echoed
            # back, a proxy's page).
            kind = elasticsearch_error_type(exc)
            detail = "Elasticsearch could not run this query" + (f" ({kind})" if kind else "")
            return Problem(422, "UNPROCESSABLE", detail, {}), {}
        if exc.meta.status == 404:
            detail = "the index is not available (not built yet?); try again later"
            return Problem(503, "UPSTREAM_UNAVAILABLE", detail), retry
        detail = f"Elasticsearch answered {exc.meta.status}; try again later"
        return Problem(503, "UPSTREAM_UNAVAILABLE", detail), retry
    detail = "Elasticsearch is unreachable; try again later"
    return Problem(503, "UPSTREAM_UNAVAILABLE", detail), retry


def http_problem(request: Request, exc: StarletteHTTPException) -> Problem:
    """An HTTPException (ours or the router's) as a problem; the router's bare phrases are
    replaced by what was not found or not allowed."""
    status = exc.status_code
    detail = str(exc.detail)
    if status == 404 and detail == _phrase(404):
        detail = f"nothing at {request.url.path}; the API is under {envelope.PREFIX} (see /docs)"
    elif status == 405 and detail == _phrase(405):
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        detail = f"{request.method} is not allowed on {request.url.path}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    return Problem(status, CODES.get(status, f"HTTP_{status}"), detail)


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return respond(request, list(exc.problems), exc.headers)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return respond(request, validation_problems(exc.errors()))


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return respond(request, [http_problem(request, exc)], dict(exc.headers or {}))


async def _on_search(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SearchError)
    return respond(request, [search_problem(exc)])


async def _on_unknown_index(request: Request, exc: Exception) -> Response:
    return respond(request, [Problem(404, "UNKNOWN_INDEX", str(exc), {"parameter": "index"})])


async def _on_elasticsearch(request: Request, exc: Exception) -> Response:
    # Not str(exc): it can hold the query, hence the user's text.
    status = exc.meta.status if isinstance(exc, ElasticsearchApiError) else None
    log.warning(
        "request %s: Elasticsearch failed: %s, status %s, error type %s",
        request_id.of(request),
        type(exc).__name__,
        status,
        elasticsearch_error_type(exc),
    )
    problem, headers = elasticsearch_problem(exc)
    return respond(request, [problem], headers)


async def _on_response_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ResponseValidationError)
    # Where and what kind only: the errors' inputs are the document's values.
    where = "; ".join(
        f"{'.'.join(str(part) for part in err.get('loc', ()))} ({err.get('type')})"
        for err in exc.errors()
    )
    log.error("request %s: the answer failed validation: %s", request_id.of(request), where)
    detail = f"unexpected error; quote request id {request_id.of(request)} when reporting it"
    return respond(request, [Problem(500, "INTERNAL_ERROR", detail)])


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # One line: the type and where, not the message or a traceback (they can quote the
    # request's data). The server logs the exception once more (re-raised after this answer);
    # `api.logs` reduces that to one line too.
    log.error(
        "request %s: unexpected error: %s", request_id.of(request), logs.exception_summary(exc)
    )
    detail = f"unexpected error; quote request id {request_id.of(request)} when reporting it"
    return respond(request, [Problem(500, "INTERNAL_ERROR", detail)])


def install(app: FastAPI) -> None:
    """Every failure of `app` answered as an error document."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(SearchError, _on_search)
    app.add_exception_handler(UnknownIndex, _on_unknown_index)
    app.add_exception_handler(ElasticsearchApiError, _on_elasticsearch)
    app.add_exception_handler(TransportError, _on_elasticsearch)
    app.add_exception_handler(ResponseValidationError, _on_response_validation)
    app.add_exception_handler(Exception, _on_unexpected)


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """`openapi` without FastAPI's own 422 entries (its validation error shape, which this API
    never sends: a parameter FastAPI rejects is a 400 error document)."""
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            schema = answers.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref") == fastapi_422:
                del answers["422"]
    schemas = openapi.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return openapi


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of the error statuses an operation can answer, all with the error
    document (500 is added to every operation; 429 and 503 declare their Retry-After, 401 its
    WWW-Authenticate)."""
    retry_after = {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    }
    challenge = {
        "WWW-Authenticate": {
            "description": "How to authenticate: `Bearer` (an API key or a JWT).",
            "schema": {"type": "string"},
        }
    }
    headers = {401: challenge, 429: retry_after, 503: retry_after}
    return {
        status: {"model": ErrorDocument, "description": _phrase(status)}
        | ({"headers": headers[status]} if status in headers else {})
        for status in sorted({*statuses, 500})
    }
