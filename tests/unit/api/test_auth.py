"""Access control without PostgreSQL: credentials, scopes, JWT checks, and the answers (401
with WWW-Authenticate, 403) of an app that accepts JWTs and has its rate limits off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import ValidationError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from api.auth import Principal, Unauthenticated, allows, credential, scopes_of_claim, user_of_token
from api.settings import ApiSettings

SECRET = "s" * 64
JWT = {
    "jwt_algorithms": ["HS256"],
    "jwt_key": SECRET,
    "jwt_issuer": "https://id.example",
    "jwt_audience": "headwater",
}


def token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "user-7",
        "iss": "https://id.example",
        "aud": "headwater",
        "exp": now + 300,
        "iat": now,
        "scope": "search dashboards",
    } | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_admin_grants_every_scope_and_others_only_themselves() -> None:
    assert allows({"admin"}, "search") and allows({"admin"}, "context")
    assert allows({"search"}, "search")
    assert not allows({"search"}, "dashboards") and not allows(set(), "search")
    assert not allows({"search", "dashboards", "context"}, "admin")


def test_the_scope_claim_is_space_separated_and_unknown_scopes_are_dropped() -> None:
    assert scopes_of_claim("search  dashboards write") == {"search", "dashboards"}
    assert scopes_of_claim(["admin"]) == frozenset() and scopes_of_claim(None) == frozenset()


def test_credentials_come_as_bearer_or_x_api_key() -> None:
    assert credential("Bearer abc", None) == "abc"
    assert credential("bearer  abc ", None) == "abc"
    assert credential(None, "abc") == "abc"
    assert credential("Bearer abc", "abc") == "abc"
    assert credential(None, None) is None
    for authorization, key in (("Basic dXNlcjpwdw==", None), ("Bearer", None), ("Bearer a", "b")):
        with pytest.raises(Unauthenticated):
            credential(authorization, key)


def test_a_principal_is_counted_by_kind_and_id() -> None:
    assert Principal("key", "abc", frozenset()).client == "key:abc"
    assert Principal("user", "u1", frozenset()).client == "user:u1"
    assert Principal("anonymous", "10.0.0.1", frozenset()).client == "ip:10.0.0.1"


def test_a_valid_token_names_its_user_and_scopes() -> None:
    user = user_of_token(token(), ApiSettings(**JWT))
    assert user == Principal("user", "user-7", frozenset({"search", "dashboards"}))


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "another-api"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "no exp claim"),
        ({"sub": None}, "no sub claim"),
        ({"aud": None}, "no aud claim"),
    ],
)
def test_a_token_failing_a_check_is_refused_saying_which(
    claims: dict[str, Any], message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        user_of_token(token(**claims), ApiSettings(**JWT))


def test_a_token_with_another_algorithm_or_key_or_none_is_refused() -> None:
    api = ApiSettings(**JWT)
    with pytest.raises(Unauthenticated, match="algorithm"):
        user_of_token(token(algorithm="HS512"), api)
    with pytest.raises(Unauthenticated, match="not a valid"):
        user_of_token(token(key="t" * 64), api)
    unsigned = jwt.encode({"sub": "x"}, None, algorithm="none")
    with pytest.raises(Unauthenticated, match="algorithm"):
        user_of_token(unsigned, api)
    with pytest.raises(Unauthenticated, match="accepts no JWT"):
        user_of_token(token(), ApiSettings())


def test_a_token_signed_by_the_issuers_private_key_passes_with_its_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    api = ApiSettings(**(JWT | {"jwt_algorithms": "RS256", "jwt_key": public.decode()}))
    assert user_of_token(token(key=private, algorithm="RS256"), api).id == "user-7"
    # The public key used as an HMAC secret (algorithm confusion) is refused.
    header = base64url(b'{"alg":"HS256","typ":"JWT"}')
    body = base64url(b'{"sub":"x","iss":"https://id.example","aud":"headwater","exp":9999999999}')
    signature = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthenticated, match="algorithm"):
        user_of_token(f"{header}.{body}.{base64url(signature)}", api)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"jwt_algorithms": "none"}, "HW_API_JWT_ALGORITHMS"),
        ({"jwt_algorithms": "HS256,RS256"}, "mixes"),
        ({"jwt_algorithms": ""}, "HW_API_JWT_ALGORITHMS"),
        ({"jwt_key": "k"}, "HW_API_JWT_ISSUER"),
        ({"cors_origins": "*"}, "origins"),
    ],
)
def test_unsafe_access_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiSettings(**settings)


def test_lists_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_API_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("HW_API_JWT_ALGORITHMS", "ES256,ES384")
    api = ApiSettings()
    assert api.cors_origins == ["https://a.example", "https://b.example"]
    assert api.jwt_algorithms == ["ES256", "ES384"]
    assert ApiSettings().anonymous is False  # the default: credentials required


@pytest.fixture
def guarded(open_app: Callable[..., FastAPI]) -> TestClient:
    """The app with credentials required, JWTs accepted, rate limits off."""
    return TestClient(open_app(anonymous=False, **JWT))


def test_no_credentials_is_a_401_error_document_with_a_challenge(guarded: TestClient) -> None:
    response = guarded.get("/api/v1/dashboards")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="headwater"'
    (error,) = response.json()["errors"]
    assert error["code"] == "UNAUTHENTICATED" and "credentials required" in error["detail"]


def test_bad_credentials_are_a_401_saying_the_token_is_invalid(guarded: TestClient) -> None:
    for headers in (
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {token(aud='other')}"},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ):
        response = guarded.get("/api/v1/dashboards", headers=headers)
        assert response.status_code == 401, headers
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert headers["Authorization"].split()[-1] not in response.text


def test_a_token_without_the_scope_is_a_403_and_with_it_a_200(guarded: TestClient) -> None:
    search_only = {"Authorization": f"Bearer {token(scope='search')}"}
    response = guarded.get("/api/v1/dashboards", headers=search_only)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "FORBIDDEN"
    assert "'dashboards'" in response.json()["errors"][0]["detail"]
    allowed = guarded.get("/api/v1/dashboards", headers={"Authorization": f"Bearer {token()}"})
    assert allowed.status_code == 200


def test_the_probes_are_open_and_the_detailed_health_needs_admin(guarded: TestClient) -> None:
    assert guarded.get("/health/live").status_code == 200
    assert guarded.get("/health/detailed").status_code == 401
    user = {"Authorization": f"Bearer {token(scope='search dashboards context')}"}
    assert guarded.get("/health/detailed", headers=user).status_code == 403


def test_anonymous_callers_get_every_scope_but_admin(open_app: Callable[..., FastAPI]) -> None:
    client = TestClient(open_app(anonymous=True))
    assert client.get("/api/v1/dashboards").status_code == 200
    assert client.get("/health/detailed").status_code == 403


def test_cors_answers_only_the_listed_origins(open_app: Callable[..., FastAPI]) -> None:
    client = TestClient(open_app(cors_origins=["https://shop.example"]))
    listed = client.get("/api/v1/dashboards", headers={"Origin": "https://shop.example"})
    assert listed.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.get("/api/v1/dashboards", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    closed = TestClient(open_app())
    default = closed.get("/api/v1/dashboards", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in default.headers
