"""Rate limits and the cap on live streams, shared by every API process through PostgreSQL.

Rate limits are GCRA (the generic cell rate algorithm, a token bucket kept as one number): a
client's row holds its theoretical arrival time `tat`, when its bucket would be full again.
A request at `now` is allowed when `max(tat, now) - now <= tolerance`, and then moves `tat` on
by one `interval` (60 s / rate). With `tolerance = (capacity - 1) * interval` a client idle
long enough may send `capacity` requests at once (the burst, `burst` times the per-minute
rate), then one per interval. `decide` is the rule in Python; `RateLimiter.check` is the same
rule as one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`, which PostgreSQL runs under the
row's lock, so concurrent requests of one client in any number of processes are counted exactly
once each, on one clock (PostgreSQL's).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass

from api.keys import Connect


@dataclass(frozen=True)
class Rate:
    """A sustained rate and how many requests may come at once."""

    per_min: int
    burst: float = 1.0

    @property
    def interval_s(self) -> float:
        return 60.0 / self.per_min

    @property
    def capacity(self) -> int:
        return max(1, math.floor(self.per_min * self.burst))

    @property
    def tolerance_s(self) -> float:
        return (self.capacity - 1) * self.interval_s


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # When refused: how long until one request would be allowed.
    retry_after_s: float
    # Requests that would still be allowed at once after this one.
    remaining: int

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (Retry-After takes no fractions)."""
        return str(max(1, math.ceil(self.retry_after_s)))


def outcome(tat: float, allowed: bool, now: float, rate: Rate) -> Decision:
    """What a request's answer says, from the `tat` it left and whether it was allowed."""
    if not allowed:
        return Decision(False, max(0.0, tat - now - rate.tolerance_s), 0)
    headroom = rate.tolerance_s - (tat - now - rate.interval_s)
    remaining = max(0, min(rate.capacity - 1, math.floor(headroom / rate.interval_s + 1e-9)))
    return Decision(True, 0.0, remaining)


def decide(tat: float | None, now: float, rate: Rate) -> tuple[Decision, float]:
    """GCRA: the decision on a request at `now` and the client's new `tat` (None: first)."""
    start = now if tat is None else max(tat, now)
    if start - now <= rate.tolerance_s:
        new_tat = start + rate.interval_s
        return outcome(new_tat, True, now, rate), new_tat
    assert tat is not None
    return outcome(tat, False, now, rate), tat


# `decide` in SQL: every SET expression reads the row as it was; now() is the statement's time.
_CHECK = """
INSERT INTO headwater_api.rate_limits AS r (bucket, tat, allowed)
VALUES (%(bucket)s, extract(epoch FROM now())::float8 + %(interval)s, true)
ON CONFLICT (bucket) DO UPDATE SET
    allowed = greatest(r.tat, extract(epoch FROM now())::float8)
              - extract(epoch FROM now())::float8 <= %(tolerance)s,
    tat = CASE
        WHEN greatest(r.tat, extract(epoch FROM now())::float8)
             - extract(epoch FROM now())::float8 <= %(tolerance)s
        THEN greatest(r.tat, extract(epoch FROM now())::float8) + %(interval)s
        ELSE r.tat
    END
RETURNING tat, allowed, extract(epoch FROM now())::float8
"""
# A row whose tat has passed is a full bucket, as good as no row.
_SWEEP = "DELETE FROM headwater_api.rate_limits WHERE tat < extract(epoch FROM now()) - 60"


class RateLimiter:
    def __init__(self, connect: Connect, sweep_every_s: float = 300.0) -> None:
        self._connect = connect
        self._sweep_every_s = sweep_every_s
        self._swept = time.monotonic()
        self._lock = threading.Lock()

    def check(self, bucket: str, rate: Rate) -> Decision:
        """Count one request of `bucket` (e.g. `key:<id>`) against `rate`."""
        params = {"bucket": bucket, "interval": rate.interval_s, "tolerance": rate.tolerance_s}
        with self._connect() as conn:
            row = conn.execute(_CHECK, params).fetchone()
            assert row is not None
            if self._sweep_due():
                conn.execute(_SWEEP)
        tat, allowed, now = row
        return outcome(tat, allowed, now, rate)

    def _sweep_due(self) -> bool:
        with self._lock:
            if time.monotonic() - self._swept < self._sweep_every_s:
                return False
            self._swept = time.monotonic()
            return True


class LiveStreams:
    """At most `cap` open streams per client, over every process: each open stream is a lease
    that its process renews (`renew`) well before `ttl_s` and ends (`close`); a process that
    died leaves leases that expire."""

    def __init__(self, connect: Connect, cap: int, ttl_s: float) -> None:
        self._connect = connect
        self.cap = cap
        self.ttl_s = ttl_s

    def open(self, client: str) -> str | None:
        """A lease for a new stream of `client`, or None when it has `cap` open already."""
        stream_id = uuid.uuid4().hex
        with self._connect() as conn, conn.transaction():
            # One client's opens are taken in turn (the count and the insert are one step).
            conn.execute("SELECT pg_advisory_xact_lock(20931, hashtext(%s))", (client,))
            conn.execute(
                "DELETE FROM headwater_api.live_streams WHERE client = %s AND expires_at < now()",
                (client,),
            )
            row = conn.execute(
                "SELECT count(*) FROM headwater_api.live_streams WHERE client = %s", (client,)
            ).fetchone()
            if row is None or row[0] >= self.cap:
                return None
            conn.execute(
                "INSERT INTO headwater_api.live_streams (stream_id, client, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s))",
                (stream_id, client, self.ttl_s),
            )
        return stream_id

    def renew(self, stream_id: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE headwater_api.live_streams "
                "SET expires_at = now() + make_interval(secs => %s) WHERE stream_id = %s",
                (self.ttl_s, stream_id),
            )

    def close(self, stream_id: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM headwater_api.live_streams WHERE stream_id = %s", (stream_id,)
            )
