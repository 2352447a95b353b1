"""API keys: their format (`hwk_<id>_<secret>`), how the secret is kept (a SHA-256 digest
only), and the table that holds them (`headwater_api.api_keys`, see migration 002).

A SHA-256 digest, not a slow password hash: the secret is 32 random bytes from `secrets`, so
there is no dictionary to try and 2**256 guesses to make; a slow hash protects low-entropy
passwords and would only add its cost to every request. The id before the secret finds the row
(and names the key in lists and logs); the digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from api.settings import SCOPES
from headwater.settings import PostgresSettings

PREFIX = "hwk"
ID_BYTES = 8
SECRET_BYTES = 32

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class BadScope(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_token() -> tuple[str, str, bytes]:
    """A new key: its id, the whole token to hand out (once), and the digest to keep."""
    key_id = secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return key_id, f"{PREFIX}_{key_id}_{secret}", digest(secret)


def parse(token: str) -> tuple[str, str] | None:
    """(id, secret) of a token shaped like a key, else None (a JWT, garbage)."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 2 * ID_BYTES or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def looks_like_key(token: str) -> bool:
    return token.startswith(f"{PREFIX}_")


def matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored)


def checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """`scopes` without repeats, in the canonical order; a scope not in SCOPES is refused."""
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise BadScope(f"unknown scope {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise BadScope(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


_COLUMNS = "id, name, scopes, created_at, revoked_at"


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], row[1], tuple(row[2]), row[3], row[4])


class KeyStore:
    """The keys table, through `connect` (a pool's `connection`, or `psycopg.connect`)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key and its token: the only time the token is seen."""
        granted = checked_scopes(scopes)
        key_id, token, stored = new_token()
        with self._connect() as conn:
            row = conn.execute(
                "INSERT INTO headwater_api.api_keys (id, name, scopes, secret_sha256) "
                f"VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                (key_id, name, list(granted), stored),
            ).fetchone()
            conn.commit()
        assert row is not None
        return _key(row), token

    def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM headwater_api.api_keys{where} ORDER BY created_at, id"
            ).fetchall()
        return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (at once, for every API process); None when there is no such key.
        Revoking a revoked key keeps its first revocation time."""
        with self._connect() as conn:
            row = conn.execute(
                "UPDATE headwater_api.api_keys SET revoked_at = coalesce(revoked_at, now()) "
                f"WHERE id = %s RETURNING {_COLUMNS}",
                (key_id,),
            ).fetchone()
            conn.commit()
        return _key(row) if row else None

    def revoke_named(self, name: str) -> list[ApiKey]:
        """Revoke every active key called `name`."""
        with self._connect() as conn:
            rows = conn.execute(
                "UPDATE headwater_api.api_keys SET revoked_at = now() "
                f"WHERE name = %s AND revoked_at IS NULL RETURNING {_COLUMNS}",
                (name,),
            ).fetchall()
            conn.commit()
        return [_key(row) for row in rows]

    def find(self, token: str) -> ApiKey | None:
        """The active key `token` is, or None (unknown, revoked, or a wrong secret)."""
        parsed = parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, secret_sha256 FROM headwater_api.api_keys "
                "WHERE id = %s AND revoked_at IS NULL",
                (key_id,),
            ).fetchone()
        if row is None or not matches(secret, bytes(row[5])):
            return None
        return _key(row[:5])


def direct_store(pg: PostgresSettings) -> KeyStore:
    """The keys over a plain connection per call to the source database (the CLI's, the
    benchmark's), not the API's pool."""

    @contextmanager
    def connect() -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(pg.dsn(pg.source_db), autocommit=True, connect_timeout=5) as conn:
            yield conn

    return KeyStore(connect)
