"""The API's connections to PostgreSQL (its keys, rate limits and live-stream leases): one pool
per process, opened on first use and closed with the app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from headwater.settings import PostgresSettings

# What a caller catches to say "PostgreSQL is unavailable" (a 503, never a 500).
UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.Error, PoolTimeout)


class Database:
    """A connection pool on the source database (where `db migrate` made `headwater_api`)."""

    def __init__(self, pg: PostgresSettings, size: int, wait_s: float = 2.0) -> None:
        self._pg = pg
        self._size = size
        self._wait_s = wait_s
        self._pool: ConnectionPool[Any] | None = None
        self._lock = threading.Lock()

    def _opened(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                # Opened without waiting: the first request waits at most `wait_s` for a
                # connection, so an unreachable PostgreSQL is a quick 503, not a hung request.
                self._pool = ConnectionPool(
                    f"{self._pg.dsn(self._pg.source_db)} connect_timeout=3",
                    min_size=1,
                    max_size=self._size,
                    kwargs={"autocommit": True},
                    timeout=self._wait_s,
                    name="headwater-api",
                    open=False,
                )
                self._pool.open(wait=False)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._opened().connection() as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
