"""The request id of every response: the client's `X-Request-ID` when it is a sane token, else
a new one; kept in the request's state, echoed in the response header, and set in `current`
for what the request causes: every log line (`api.logs`), the `X-Opaque-Id` of the
Elasticsearch calls made for it.

One pure ASGI middleware (not `BaseHTTPMiddleware`, which buffers and would hold back the
dashboards' Server-Sent Events). The error handlers read the id from the request state too,
so even the 500 answered outside this middleware carries it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
MAX_LENGTH = 128
# Letters, digits and a few separators: safe in a header, a log line and a JSON string.
_SANE = re.compile(rf"^[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}$")
# The id of the request being served, in its task and what it runs (threads of the pool,
# tasks it starts). Set by the middleware and not reset: each request is served in a task of
# its own, and the server's own lines after the application returned (an exception it
# re-raised) still name it.
current: ContextVar[str | None] = ContextVar("request_id", default=None)


def sanitise(value: str | None) -> str | None:
    """`value` if it is a token worth echoing (bounded, safe characters), else None."""
    if value is None or not _SANE.fullmatch(value):
        return None
    return value


def new_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def of(request: Request) -> str:
    """The request's id (set by the middleware; a fresh one if it never ran)."""
    found = getattr(request.state, "request_id", None)
    if not isinstance(found, str):
        found = new_id()
        request.state.request_id = found
        current.set(found)
    return found


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = sanitise(request.headers.get(HEADER)) or new_id()
        request.state.request_id = request_id
        current.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """`openapi` with the header declared on every operation: an optional request parameter
    and a header of every response."""
    parameter = {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": (
            f"Echoed back when it is 1 to {MAX_LENGTH} letters, digits or `._:-`; "
            "otherwise the response carries a new id."
        ),
        "schema": {"type": "string"},
    }
    header = {
        "description": "The request's id, as in `meta.requestId`.",
        "schema": {"type": "string", "pattern": _SANE.pattern},
    }
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            params = operation.setdefault("parameters", [])
            if not any(p.get("name") == HEADER for p in params):
                params.append(parameter)
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})[HEADER] = header
    return openapi
