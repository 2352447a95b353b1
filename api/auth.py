"""Who is calling and what they may do: credentials (an API key as `Authorization: Bearer` or
`X-API-Key`, or a JWT as `Authorization: Bearer`), scopes, and the rate limit of the caller,
checked by one dependency per router (`Access.require(scope)`).

Order: no or bad credentials is a 401 (with `WWW-Authenticate`), too many requests a 429 (with
`Retry-After`; refused credentials count against their address too), a missing scope a 403.
The checks are pure functions here; the key table and the counters are `api.keys.KeyStore`
and `api.limits.RateLimiter`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api import errors, request_id
from api.db import UNAVAILABLE
from api.keys import KeyStore, looks_like_key
from api.limits import Rate, RateLimiter
from api.settings import SCOPES, ApiSettings

log = logging.getLogger(__name__)

ADMIN = "admin"
REALM = 'Bearer realm="headwater"'
API_KEY_HEADER = "X-API-Key"

# The security schemes of the document: FastAPI lists them (as alternatives) on every operation
# that depends on them, so Swagger UI and the fuzzer know how to authenticate.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`hwk_...`, from `headwater api-keys create`) or a JWT whose "
    "`scope` claim lists the scopes (search, dashboards, context, admin).",
)
key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`hwk_...`).",
)


@dataclass(frozen=True)
class Principal:
    """The caller: an API key, a JWT's subject, or an anonymous address."""

    kind: Literal["key", "user", "anonymous"]
    id: str
    scopes: frozenset[str]

    @property
    def client(self) -> str:
        """Who is counted by the rate limits and the live-stream cap."""
        return f"{'ip' if self.kind == 'anonymous' else self.kind}:{self.id}"


class Unauthenticated(Exception):
    """No credentials, or ones that are not valid: answered 401."""


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether `scopes` grant `needed`; admin grants everything."""
    granted = set(scopes)
    return needed in granted or ADMIN in granted


def scopes_of_claim(claim: Any) -> frozenset[str]:
    """The known scopes of a `scope` claim (space-separated, as OAuth 2.0 writes them)."""
    if not isinstance(claim, str):
        return frozenset()
    return frozenset(s for s in claim.split() if s in SCOPES)


def credential(authorization: str | None, api_key: str | None) -> str | None:
    """The token the request carries: `Authorization: Bearer <token>` or `X-API-Key`.
    Both, disagreeing, or an Authorization of another scheme, is refused."""
    bearer: str | None = None
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be `Bearer <key or token>`")
        bearer = token.strip()
    key = api_key.strip() if api_key else None
    if bearer and key and bearer != key:
        raise Unauthenticated(f"Authorization and {API_KEY_HEADER} name different credentials")
    return bearer or key or None


def user_of_token(token: str, api: ApiSettings) -> Principal:
    """The user a JWT names, checked: its signature with the configured algorithms and key,
    issuer, audience, expiry. Raises Unauthenticated saying which check failed."""
    if api.jwt_key is None:
        raise Unauthenticated("not a valid API key (and this API accepts no JWT)")
    try:
        claims = jwt.decode(
            token,
            api.jwt_key.get_secret_value(),
            algorithms=list(api.jwt_algorithms),
            audience=api.jwt_audience,
            issuer=api.jwt_issuer,
            leeway=api.jwt_leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("the token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthenticated("the token is not for this API (audience)") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthenticated("the token's issuer is not trusted") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise Unauthenticated("the token's algorithm is not accepted") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"the token has no {exc.claim} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("not a valid API key or token") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the token's sub claim is not a user id")
    return Principal("user", subject, scopes_of_claim(claims.get("scope")))


def _unauthenticated(detail: str, given: bool) -> errors.ApiError:
    challenge = f'{REALM}, error="invalid_token"' if given else REALM
    return errors.ApiError(
        errors.Problem(401, "UNAUTHENTICATED", detail), headers={"WWW-Authenticate": challenge}
    )


def _unavailable(request: Request, exc: Exception) -> errors.ApiError:
    log.warning("request %s: access control: %s", request_id.of(request), type(exc).__name__)
    detail = "access control is unavailable (PostgreSQL unreachable?); try again later"
    return errors.ApiError(
        errors.Problem(503, "UPSTREAM_UNAVAILABLE", detail),
        headers={"Retry-After": str(errors.RETRY_AFTER_S)},
    )


class Access:
    """The API's access control: `require(scope)` is the dependency of a router."""

    def __init__(self, api: ApiSettings, keys: KeyStore, limiter: RateLimiter | None) -> None:
        self.api = api
        self.keys = keys
        self.limiter = limiter
        self.key_rate = Rate(api.key_rate_per_min, api.burst)
        self.user_rate = Rate(api.user_rate_per_min, api.burst)

    def identify(self, request: Request, token: str | None) -> Principal:
        if token is None:
            if self.api.anonymous:
                address = request.client.host if request.client else "unknown"
                return Principal("anonymous", address, frozenset(SCOPES) - {ADMIN})
            raise Unauthenticated(
                f"credentials required: an API key (Authorization: Bearer or {API_KEY_HEADER}) "
                "or a JWT"
            )
        if looks_like_key(token):
            key = self.keys.find(token)
            if key is None:
                raise Unauthenticated("the API key is not valid (unknown or revoked)")
            return Principal("key", key.id, frozenset(key.scopes))
        return user_of_token(token, self.api)

    def limit(self, principal: Principal) -> None:
        rate = self.key_rate if principal.kind == "key" else self.user_rate
        self._count(principal.client, rate)

    def limit_failure(self, request: Request) -> None:
        """Count a refused credential against its address: guessing keys or tokens is held to
        the per-user rate like anything else (then 429, not 401)."""
        address = request.client.host if request.client else "unknown"
        self._count(f"failed:{address}", self.user_rate)

    def _count(self, client: str, rate: Rate) -> None:
        if self.limiter is None:
            return
        decision = self.limiter.check(client, rate)
        if not decision.allowed:
            detail = (
                f"more than {rate.per_min} requests per minute (bursts to {rate.capacity}); "
                f"try again in {decision.retry_after_header} s"
            )
            raise errors.ApiError(
                errors.Problem(429, "RATE_LIMITED", detail),
                headers={"Retry-After": decision.retry_after_header},
            )

    def require(self, scope: str) -> Callable[..., Principal]:
        """The dependency that lets through callers granted `scope`, within their rate."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")

        def check(
            request: Request,
            bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
            key: str | None = Security(key_scheme),
        ) -> Principal:
            # The raw header: HTTPBearer drops an Authorization of another scheme silently.
            authorization = request.headers.get("authorization")
            try:
                token = credential(authorization, key)
                principal = self.identify(request, token)
                self.limit(principal)
            except Unauthenticated as exc:
                given = bool(authorization or key)
                if given:
                    try:
                        self.limit_failure(request)
                    except UNAVAILABLE as unavailable:
                        raise _unavailable(request, unavailable) from None
                raise _unauthenticated(str(exc), given) from None
            except UNAVAILABLE as exc:
                raise _unavailable(request, exc) from None
            if not allows(principal.scopes, scope):
                detail = f"this {principal.kind} is not granted the {scope!r} scope"
                raise errors.ApiError(errors.Problem(403, "FORBIDDEN", detail))
            request.state.principal = principal
            return principal

        return check

    @staticmethod
    def responses() -> dict[int | str, dict[str, Any]]:
        """The answers every protected operation may give, for its OpenAPI entry."""
        return errors.responses(401, 403, 429, 503)
