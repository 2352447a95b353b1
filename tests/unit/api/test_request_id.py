"""Request ids: a sane client id is echoed, anything else replaced, on every response."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is what we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from fastapi import FastAPI

from api import request_id
from api.app import base_app


@pytest.mark.parametrize("value", ["abc", "req_0123456789abcdef", "a.b:c-d_e", "x" * 128])
def test_a_sane_id_is_kept(value: str) -> None:
    assert request_id.sanitise(value) == value


@pytest.mark.parametrize(
    "value", [None, "", "x" * 129, "has space", "new\nline", "semi;colon", "é", "a/b", "<x>"]
)
def test_anything_else_is_refused(value: str | None) -> None:
    assert request_id.sanitise(value) is None


def test_new_ids_are_sane_and_distinct() -> None:
    made = {request_id.new_id() for _ in range(100)}
    assert len(made) == 100 and all(request_id.sanitise(m) for m in made)


@pytest.fixture
def client() -> TestClient:
    app: FastAPI = base_app()

    @app.get("/echo")
    def echo() -> dict[str, str]:
        return {}

    @app.get("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("secret internals")

    return TestClient(app, raise_server_exceptions=False)


def test_the_id_is_echoed_or_made_on_every_response(client: TestClient) -> None:
    assert client.get("/echo", headers={"X-Request-ID": "mine-1"}).headers["x-request-id"] == (
        "mine-1"
    )
    made = client.get("/echo", headers={"X-Request-ID": "not mine!"}).headers["x-request-id"]
    assert made.startswith("req_")
    missing = client.get("/nowhere", headers={"X-Request-ID": "mine-2"})
    assert missing.headers["x-request-id"] == "mine-2"
    assert missing.json()["errors"][0]["meta"]["requestId"] == "mine-2"


def test_an_unexpected_error_is_a_500_without_internals_and_with_the_id(
    client: TestClient,
) -> None:
    response = client.get("/boom", headers={"X-Request-ID": "mine-3"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "mine-3"
    (error,) = response.json()["errors"]
    assert error["code"] == "INTERNAL_ERROR" and error["meta"]["requestId"] == "mine-3"
    assert "secret" not in response.text and "RuntimeError" not in response.text


def test_the_document_declares_the_header_everywhere(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operation = paths["/echo"]["get"]
    assert any(p["name"] == "X-Request-ID" for p in operation["parameters"])
    assert all("X-Request-ID" in r["headers"] for r in operation["responses"].values())
