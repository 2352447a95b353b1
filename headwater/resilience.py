"""Resilience helpers: retry delays with jitter, circuit breakers (pybreaker), and the
dead-letter record.

Parameters follow our integration standard: retries start at 100 ms, double up to 30 s, at most
5 attempts, with jitter; a breaker opens after 5 failures within 10 s, stays open 30 s, and
closes after 3 consecutive successes in half-open state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pybreaker
from pydantic import BaseModel, ConfigDict, Field
from tenacity import wait_exponential_jitter
from tenacity.wait import wait_base

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.1
    multiplier: float = 2.0
    max_s: float = 30.0
    max_attempts: int = 5
    jitter: float = 0.2  # +/- this fraction of the delay, so retries do not stampede

    def tenacity_wait(self) -> wait_base:
        """The same backoff as a tenacity wait (exponential from `initial_s` up to `max_s`,
        with jitter), for callers that retry with tenacity."""
        return wait_exponential_jitter(
            multiplier=self.initial_s, max=self.max_s, exp_base=self.multiplier
        )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand() - 1)))


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5  # failures within `window_s` that open the breaker
    window_s: float = 10.0
    open_s: float = 30.0  # calls refused this long, then let through on trial
    successes: int = 3  # trial successes in a row that close it again


class WindowedFailures(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-memory state, with failures counted over the last `window_s` seconds
    (pybreaker itself counts failures in a row, however far apart)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._window_s = window_s
        self._clock = clock
        self._failures: deque[float] = deque()

    def increment_counter(self) -> None:
        self._failures.append(self._clock())

    def reset_counter(self) -> None:
        self._failures.clear()

    @property
    def counter(self) -> int:
        now = self._clock()
        while self._failures and now - self._failures[0] > self._window_s:
            self._failures.popleft()
        return len(self._failures)


CircuitOpen = pybreaker.CircuitBreakerError


class _LogChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        if new.name == pybreaker.STATE_OPEN:
            log.warning("circuit %s open: calls refused for %g s", cb.name, cb.reset_timeout)
        elif new.name == pybreaker.STATE_CLOSED and old is not None:
            log.warning("circuit %s closed: calls go through again", cb.name)


class Breaker:
    """A named circuit breaker with the integration standard's numbers.

    Guard a call with `with breaker.guard(): ...` (around an `await` too): a failure raised in
    the block counts, and while the breaker is open the block is not entered (`CircuitOpen`).
    The failure that opens it is raised as itself, so callers still see what went wrong.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy = BreakerPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy
        self._storage = WindowedFailures(policy.window_s, clock)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=policy.failures,
            reset_timeout=policy.open_s,
            success_threshold=policy.successes,
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
            listeners=[_LogChanges()],
        )

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        with self._breaker.calling():
            yield

    @property
    def state(self) -> str:
        """closed, open or half-open (trial calls go through)."""
        return self._breaker.current_state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 unless open)."""
        opened_at = self._storage.opened_at
        if self.state != pybreaker.STATE_OPEN or opened_at is None:
            return 0.0
        waited = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self.policy.open_s - waited)

    def report(self) -> dict[str, Any]:
        return {"state": self.state, "retry_in_s": round(self.retry_in_s(), 1)}


class DeadLetter(BaseModel):
    """What goes to a dead-letter topic: the original record untouched, which consumer failed on
    it, at which stage and why, and how often.

    One letter per failing consumer: a record several consumers read (a search index and a
    dashboard, say) that fails for two of them is two letters, each naming its consumer, so
    each can be redriven to that consumer alone. `app` is the worker app (its consumer group)
    the consumer runs in: apps reading the same change topics share its dead-letter topic.
    A record that fails again when redriven is a new letter with `attempts` one higher and the
    same `first_seen`; the newest letter of an identity (`ident`) is its current state.
    """

    model_config = ConfigDict(frozen=True)

    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str | None
    error: str
    stage: str
    consumer: str = ""
    app: str = ""
    attempts: int = 1
    first_seen: datetime = Field(default_factory=lambda: datetime.now(UTC))
    last_seen: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def where(self) -> str:
        return f"{self.source_topic}[{self.partition}]@{self.offset}"

    @property
    def ident(self) -> tuple[str, str, str, int, int]:
        """What makes two letters the same: one record failing for one consumer of one app
        (a letter from before letters named their consumer is told apart by its stage)."""
        consumer = self.consumer or self.stage
        return (self.app, consumer, self.source_topic, self.partition, self.offset)

    @property
    def id(self) -> str:
        """A short, stable name for `ident`, to show and to type."""
        joined = "|".join(str(part) for part in self.ident)
        return hashlib.sha1(joined.encode()).hexdigest()[:10]

    @classmethod
    def of(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | str | None,
        value: bytes | str | None,
        error: BaseException | str,
        stage: str,
        consumer: str = "",
    ) -> DeadLetter:
        return cls(
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=_text(key),
            value=_text(value),
            error=str(error),
            stage=stage,
            consumer=consumer,
        )

    def again(self, error: BaseException | str, stage: str) -> DeadLetter:
        """This letter's record failed once more (a redrive that did not fix it)."""
        return self.model_copy(
            update={
                "error": str(error),
                "stage": stage,
                "attempts": self.attempts + 1,
                "last_seen": max(self.last_seen, datetime.now(UTC)),
            }
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeadLetter:
        """A letter as published; one written before letters named their consumer reads with
        its `failed_at` as both first and last seen."""
        data = json.loads(raw)
        failed_at = data.pop("failed_at", None)
        if failed_at is not None:
            data.setdefault("first_seen", failed_at)
            data.setdefault("last_seen", failed_at)
        return cls.model_validate(data)


def _text(raw: bytes | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return raw.decode("utf-8", errors="backslashreplace")
