"""Resilience helpers: retry delays with jitter, a circuit breaker, and the dead-letter record.

Parameters follow our integration standard: retries start at 100 ms, double up to 30 s, at most
5 attempts, with jitter; a breaker opens after 5 failures within 10 s, stays open 30 s, and
closes after 3 consecutive successes in half-open state.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from tenacity import wait_exponential_jitter
from tenacity.wait import wait_base


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


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(RuntimeError):
    """Calls are refused until the breaker's open period has passed."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 5
    window_s: float = 10.0
    open_s: float = 30.0
    success_threshold: int = 3
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    _failures: deque[float] = field(default_factory=deque)
    _opened_at: float = 0.0
    _successes: int = 0

    def before_call(self) -> None:
        """Raise CircuitOpen if a call must not be attempted now."""
        if self.state is BreakerState.OPEN:
            waited = self.clock() - self._opened_at
            if waited < self.open_s:
                raise CircuitOpen(self.name, self.open_s - waited)
            self.state, self._successes = BreakerState.HALF_OPEN, 0

    def record_success(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self.state = BreakerState.CLOSED
                self._failures.clear()

    def record_failure(self) -> None:
        now = self.clock()
        if self.state is BreakerState.HALF_OPEN:
            self._trip(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold:
            self._trip(now)

    def _trip(self, now: float) -> None:
        self.state, self._opened_at = BreakerState.OPEN, now
        self._failures.clear()


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
