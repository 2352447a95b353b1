"""The API's log records: the request's id on each, personal data masked, an error raised while
serving a request as one line; and the uvicorn configuration that installs all three."""

from __future__ import annotations

import io
import logging
import logging.config
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api import logs, request_id
from api.app import base_app
from api.masking import EMAIL_MASK, MASK


class Kept(logging.Handler):
    """Keeps each record, formatted, after the API's filters."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        for f in (logs.RequestIdFilter(), logs.ExceptionSummaryFilter(), logs.MaskingFilter()):
            self.addFilter(f)
        self.setFormatter(logs.Formatter(logs.FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def kept() -> Iterator[Kept]:
    handler = Kept()
    logger = logging.getLogger("api.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("api.test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_outside_a_request_the_id_is_a_dash() -> None:
    rec = record("hello")
    assert logs.RequestIdFilter().filter(rec) and rec.request_id == "-"  # type: ignore[attr-defined]


def test_lines_logged_while_serving_carry_the_request_id(kept: Kept) -> None:
    """In the event loop (async route) and in the thread pool (sync route) alike."""
    app = base_app()
    log = logging.getLogger("api.test")

    @app.get("/async")
    async def in_loop() -> dict[str, str]:
        log.info("in the loop")
        return {}

    @app.get("/sync")
    def in_thread() -> dict[str, str]:
        log.info("in a thread")
        return {}

    client = TestClient(app)
    client.get("/async", headers={"X-Request-ID": "rid-loop"})
    client.get("/sync", headers={"X-Request-ID": "rid-thread"})
    assert [r.request_id for r in kept.records] == ["rid-loop", "rid-thread"]  # type: ignore[attr-defined]
    assert "[rid-loop] in the loop" in kept.lines[0]


def test_an_unexpected_error_is_one_line_with_the_id_and_type(kept: Kept) -> None:
    app = base_app()
    logging.getLogger("api.errors").addHandler(kept)
    try:

        @app.get("/boom")
        def boom() -> dict[str, str]:
            raise KeyError("ann@example.com ordered 3 kettles")

        response = TestClient(app, raise_server_exceptions=False).get(
            "/boom", headers={"X-Request-ID": "rid-boom"}
        )
    finally:
        logging.getLogger("api.errors").removeHandler(kept)
    assert response.status_code == 500
    (line,) = kept.lines
    assert "[rid-boom]" in line and "KeyError at " in line and "test_logs.py:" in line
    assert "\n" not in line and "kettles" not in line and "Traceback" not in line


def test_an_exception_logged_in_a_request_loses_its_traceback() -> None:
    try:
        raise ValueError("customer ann@example.com")
    except ValueError as exc:
        rec = record("failed for %s", "x", exc=exc)
    token = request_id.current.set("rid-1")
    try:
        assert logs.ExceptionSummaryFilter().filter(rec)
    finally:
        request_id.current.reset(token)
    assert rec.exc_info is None and rec.exc_text is None
    assert rec.getMessage().startswith("failed for x (ValueError at ")


def test_outside_a_request_a_traceback_is_kept_and_masked() -> None:
    try:
        raise ValueError("customer ann@example.com")
    except ValueError as exc:
        rec = record("feed failed", exc=exc)
    assert logs.ExceptionSummaryFilter().filter(rec) and logs.MaskingFilter().filter(rec)
    assert rec.exc_text is not None and "Traceback" in rec.exc_text
    assert f"customer {EMAIL_MASK}" in rec.exc_text and "ann@" not in rec.exc_text


def test_messages_arguments_and_extra_fields_are_masked() -> None:
    rec = record("order by %s for %r", "ann@example.com", {"full_name": "Ann Smith", "n": 2})
    rec.email = "bob@example.org"
    assert logs.MaskingFilter().filter(rec)
    assert rec.getMessage() == f"order by {EMAIL_MASK} for {{'full_name': '{MASK}', 'n': 2}}"
    assert rec.email == EMAIL_MASK  # type: ignore[attr-defined]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The loggers the configuration touches, put back as they were (pytest's capture too)."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "elastic_transport"]
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate, lg.filters[:], lg.disabled)
        for n in names
        for lg in [logging.getLogger(n or None)]
    }
    try:
        yield
    finally:
        for n, (handlers, level, propagate, filters, disabled) in saved.items():
            lg = logging.getLogger(n or None)
            lg.handlers[:], lg.filters[:] = handlers, filters
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_the_uvicorn_configuration_formats_both_kinds_of_line(level: str) -> None:
    logging.config.dictConfig(logs.log_config(level))
    out = io.StringIO()
    for name in ("", "uvicorn.access"):
        (handler,) = logging.getLogger(name or None).handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(out)
    token = request_id.current.set("rid-2")
    try:
        logging.getLogger("uvicorn.access").warning(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/api/v1/indexes/products/search?q=ann%40example.com&name=Ann",
            "1.1",
            200,
        )
        logging.getLogger("api.search").warning("slow for %s", "bob@example.org")
        logging.getLogger("elastic_transport.transport").info("not shown")
    finally:
        request_id.current.reset(token)
    access, app_line = out.getvalue().splitlines()
    assert access.endswith(
        f'WARNING access [rid-2] 127.0.0.1:5000 "GET /api/v1/indexes/products/search'
        f'?q={EMAIL_MASK}&name={MASK} HTTP/1.1" 200 OK'
    )
    assert app_line.endswith(f"WARNING api.search [rid-2] slow for {EMAIL_MASK}")
    # 2026-12-03T19:39:26.123Z
    assert access[10] == "T" and access[19] == "." and access[23] == "Z"
