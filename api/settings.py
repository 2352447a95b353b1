"""Settings of the HTTP service (env prefix HW_API_): where it listens, page sizes, who may call
it (keys, JWT, anonymous), its rate limits, and which browser origins may read it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from headwater.settings import _Component, _config

# What a key or token may be granted; `admin` implies every other.
SCOPES = ("search", "dashboards", "context", "admin")
# Signature algorithms PyJWT verifies: shared secrets (HS*) or public keys (the rest). `none`
# is never one of them.
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _listed(value: Any) -> Any:
    """A comma-separated environment value as a list (a JSON list or a list stay as they are)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


Listed = Annotated[list[str], NoDecode]


class ApiSettings(_Component):
    model_config = _config("HW_API_")

    host: str = "127.0.0.1"
    port: int = 8000
    # Hits per page: the default and the largest a client may ask for.
    default_size: int = 10
    max_size: int = 100
    # `/health/ready` asks each worker's web endpoint; this many workers are expected.
    workers: int = 1
    # uvicorn worker processes serving the API (`api.serve`); over 1, metrics are summed
    # across them through a multiprocess directory.
    processes: int = Field(default=1, ge=1)
    log_level: str = "info"
    # One line per request (uvicorn's access log, with the request id, masked).
    access_log: bool = True
    # `/metrics` looks at the pipeline's lag at most this often (a look costs a few queries).
    metrics_lag_max_age_s: float = Field(default=10.0, gt=0.0)

    # Requests without credentials are refused (401) unless this is on: for a machine of one's
    # own only. Anonymous callers get every scope but admin, and the per-user rate limit by
    # address.
    anonymous: bool = False
    # The key this project's own clients (`headwater dashboards`) send; `headwater run` prints
    # a new one.
    key: SecretStr | None = None

    # JWT bearer tokens (PyJWT): accepted only when `jwt_key` is set. For HS* algorithms it is
    # the shared secret, otherwise the issuer's public key (PEM). Issuer and audience are then
    # required and checked; scopes come from the `scope` claim (space-separated), the user from
    # `sub`.
    jwt_algorithms: Listed = Field(default_factory=lambda: ["RS256"])
    jwt_key: SecretStr | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Clock skew tolerated on `exp`, `nbf` and `iat`.
    jwt_leeway_s: float = Field(default=30.0, ge=0.0)

    # Rate limits (GCRA, counted in PostgreSQL so that every API process shares them): a
    # sustained rate per minute, and bursts up to `burst` times that many requests at once.
    rate_limits: bool = True
    key_rate_per_min: int = Field(default=10_000, ge=1)
    user_rate_per_min: int = Field(default=1_000, ge=1)
    burst: float = Field(default=2.0, ge=1.0)
    # Live streams (Server-Sent Events) one key, user or address may hold open at once.
    live_streams_per_client: int = Field(default=5, ge=1)
    # Connections to PostgreSQL (keys and limits) per API process.
    db_pool_size: int = Field(default=10, ge=1)

    # Browser origins allowed to read the API (CORS), e.g. https://shop.example; none by default.
    cors_origins: Listed = Field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @field_validator("jwt_algorithms", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _listed(value)

    @model_validator(mode="after")
    def _access_is_sound(self) -> ApiSettings:
        algorithms = set(self.jwt_algorithms)
        unknown = algorithms - HMAC_ALGORITHMS - KEY_ALGORITHMS
        if not algorithms or unknown:
            raise ValueError(
                f"HW_API_JWT_ALGORITHMS must name signature algorithms of "
                f"{sorted(HMAC_ALGORITHMS | KEY_ALGORITHMS)}, got {sorted(unknown) or 'none'}"
            )
        # One key cannot be both a shared secret and a public key: mixing them lets a token
        # signed with the public key as an HMAC secret pass (algorithm confusion).
        if algorithms & HMAC_ALGORITHMS and algorithms & KEY_ALGORITHMS:
            raise ValueError("HW_API_JWT_ALGORITHMS mixes HS* with public-key algorithms")
        if self.jwt_key is not None and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("HW_API_JWT_KEY needs HW_API_JWT_ISSUER and HW_API_JWT_AUDIENCE")
        if "*" in self.cors_origins:
            raise ValueError("HW_API_CORS_ORIGINS lists origins; '*' is not one")
        return self
