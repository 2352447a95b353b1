"""The bulk writer: change actions to Elasticsearch `_bulk`, one outcome per document.

The pure part (`operations`, `classify`, `sort_outcomes`) shapes requests and sorts responses;
the writers do the network call. Following elasticsearch-py's `streaming_bulk`, only what can
succeed on a retry is resent (429, 5xx, a transient refusal, a write block on the index behind
an alias), with growing backoff; a version conflict on an externally versioned write is a stale
event, skipped on purpose; any other rejection is the document's own fault: logged with its
key, counted, and returned so the caller can dead-letter it. `AsyncBulkWriter.write` returns
only when Elasticsearch has acknowledged every action, one way or another, which is what lets
the stream workers commit offsets after it returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from headwater.resilience import Breaker, CircuitOpen, RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Action:
    """One write: an `index` (externally versioned, or compare-and-set) or a `create`."""

    op: Literal["index", "create"]
    index: str
    id: str
    body: dict[str, Any]
    version: int | None = None
    # Compare-and-set: written only if the document is still at this sequence number.
    if_seq_no: int | None = None
    if_primary_term: int | None = None
    # A concrete index name rather than an alias (the merger writes where it read).
    concrete: bool = False
    # Where the change came from, for logs and dead letters: `topic[partition]@offset`, key.
    where: str = ""
    key: str = ""
    origin: Any = None


class Outcome(StrEnum):
    WRITTEN = "written"
    STALE = "stale"  # an older or duplicate change: the index already holds something newer
    CONFLICT = "conflict"  # a compare-and-set lost a race: the caller reads and merges again
    REJECTED = "rejected"
    RETRY = "retry"
    # The index refuses writes for now (a write block: retired by a reindex, or set by an
    # operator). A write through an alias is retried and finds the alias's current index; a
    # compare-and-set against a concrete index goes back to its caller to resolve it again.
    BLOCKED = "blocked"


@dataclass
class Rejection:
    action: Action
    status: int
    reason: str


@dataclass
class BulkResult:
    written: int = 0
    stale: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    conflicts: list[Action] = field(default_factory=list)
    # Of `conflicts`, how many met a blocked index rather than a newer document.
    blocked: int = 0
    # Each written action with its response item (`_seq_no`, `_primary_term`, ...).
    acknowledged: list[tuple[Action, dict[str, Any]]] = field(default_factory=list)
    requests: int = 0

    def add(self, other: BulkResult) -> None:
        self.written += other.written
        self.stale += other.stale
        self.rejected.extend(other.rejected)
        self.conflicts.extend(other.conflicts)
        self.blocked += other.blocked
        self.acknowledged.extend(other.acknowledged)
        self.requests += other.requests


def operations(actions: Sequence[Action]) -> list[dict[str, Any]]:
    """The NDJSON lines of one `_bulk` request."""
    lines: list[dict[str, Any]] = []
    for action in actions:
        meta: dict[str, Any] = {"_index": action.index, "_id": action.id}
        if action.version is not None:
            meta["version"] = action.version
            meta["version_type"] = "external"
        if action.concrete:
            meta["require_alias"] = False
        if action.if_seq_no is not None:
            meta["if_seq_no"] = action.if_seq_no
            meta["if_primary_term"] = action.if_primary_term
        lines.append({action.op: meta})
        lines.append(action.body)
    return lines


def classify(action: Action, item: dict[str, Any]) -> tuple[Outcome, str]:
    """What one response item means for its action."""
    status = int(item.get("status", 0))
    if 200 <= status < 300:
        return (Outcome.STALE if item.get("result") == "noop" else Outcome.WRITTEN), ""
    error = item.get("error") or {}
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    if status == 409:
        # An externally versioned write lost to a newer version: stale, as intended. A
        # compare-and-set (or a create of a document that appeared meanwhile) lost a race.
        return (Outcome.STALE if action.version is not None else Outcome.CONFLICT), reason
    if status == 429 or status >= 500:
        return Outcome.RETRY, reason
    if status == 403 and error.get("type") == "cluster_block_exception":
        return Outcome.BLOCKED, reason
    return Outcome.REJECTED, reason


def sort_outcomes(
    actions: Sequence[Action], items: list[dict[str, Any]]
) -> tuple[BulkResult, list[Action]]:
    """One response's items, sorted: what came of each action, and the actions to send again."""
    result, retry = BulkResult(requests=1), []
    for action, wrapped in zip(actions, items, strict=True):
        item = next(iter(wrapped.values()))
        outcome, reason = classify(action, item)
        if outcome is Outcome.WRITTEN:
            result.written += 1
            result.acknowledged.append((action, item))
        elif outcome is Outcome.STALE:
            result.stale += 1
        elif outcome is Outcome.RETRY or (outcome is Outcome.BLOCKED and not action.concrete):
            retry.append(action)
        elif outcome is Outcome.BLOCKED:
            result.conflicts.append(action)
            result.blocked += 1
        elif outcome is Outcome.CONFLICT:
            result.conflicts.append(action)
        else:
            result.rejected.append(Rejection(action, int(item.get("status", 0)), reason))
            log.error(
                "elasticsearch rejected %s id=%s key=%s from %s: %s",
                action.index, action.id, action.key, action.where or "-", reason,
            )  # fmt: skip
    return result, retry


class Backpressure(Exception):
    """Every document of a bulk came back 429: the cluster refuses writes for now (a full
    disk's read-only block, say). Counted as a failure of the call, like a refused request."""


# What a call to Elasticsearch retries. Even a whole-request 4xx (say, the alias was dropped) is
# retried rather than raised: raising would stop the worker, and acking would lose changes.
_RETRIED = (TransportConnectionError, ConnectionTimeout, ApiError, Backpressure)


def _transient_api_error(exc: ApiError) -> bool:
    return exc.meta.status == 429 or exc.meta.status >= 500


def _retrying(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiError) and not _transient_api_error(exc):
        log.error("elasticsearch refused the request: %s", exc)
    delay = state.next_action.sleep if state.next_action else 0.0
    log.warning("elasticsearch call failed (%s); retry %d in %.2fs", exc, state.attempt_number,
                delay)  # fmt: skip


class AsyncBulkWriter:
    """Writes batches for a stream worker; blocks (retrying) until every action is settled.

    Every call to Elasticsearch goes through the writer's breaker and is retried by the
    integration standard (5 attempts, from 100 ms doubling, with jitter). When the attempts
    are used up the breaker has opened: the writer waits until it lets a trial through, and
    goes on. It never gives up: giving up would mean committing offsets of unwritten changes.
    """

    def __init__(
        self,
        es: AsyncElasticsearch,
        policy: RetryPolicy | None = None,
        breaker: Breaker | None = None,
        require_alias: bool = True,
    ) -> None:
        self.es = es
        # Workers only ever write through aliases: a missing alias must not auto-create an
        # index with guessed mappings. Reindex writes to the new concrete index.
        self.require_alias = require_alias
        self.policy = policy or RetryPolicy()
        # Rounds for documents that must be sent again (429 for some, a moved alias) wait at
        # most 5 s: the call itself answered.
        self.rounds = RetryPolicy(initial_s=self.policy.initial_s, max_s=5.0)
        self.breaker = breaker or Breaker("elasticsearch")

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """`make()`, through the breaker and the retries, until it succeeds."""
        while True:
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.policy.max_attempts),
                    wait=self.policy.tenacity_wait(),
                    retry=retry_if_exception_type(_RETRIED),
                    before_sleep=_retrying,
                    reraise=True,
                ):
                    with attempt, self.breaker.guard():
                        return await make()
            except CircuitOpen:
                await asyncio.sleep(max(0.1, self.breaker.retry_in_s()))
            except _RETRIED as exc:
                log.warning("elasticsearch still failing after %d attempts (%s)",
                            self.policy.max_attempts, exc)  # fmt: skip

    async def _bulk(self, pending: Sequence[Action]) -> list[dict[str, Any]]:
        response = await self.es.bulk(
            operations=operations(pending), require_alias=self.require_alias
        )
        items: list[dict[str, Any]] = response.body["items"]
        if items and all(next(iter(i.values())).get("status") == 429 for i in items):
            raise Backpressure(f"all {len(items)} documents of the bulk answered 429")
        return items

    async def write(self, actions: Sequence[Action]) -> BulkResult:
        total = BulkResult()
        pending = list(actions)
        rounds = 0
        while pending:
            items = await self.call(functools.partial(self._bulk, pending))
            result, pending = sort_outcomes(pending, items)
            total.add(result)
            if pending:
                rounds += 1
                await asyncio.sleep(self.rounds.delay(min(rounds, 10)))
        return total


def write_sync(es: Elasticsearch, actions: Sequence[Action], chunk: int = 2000) -> BulkResult:
    """The same contract for one-off jobs (reindex): retry what can succeed, a few times."""
    total = BulkResult()
    policy = RetryPolicy()
    for start in range(0, len(actions), chunk):
        pending = list(actions[start : start + chunk])
        for attempt in range(1, policy.max_attempts + 2):
            response = es.bulk(operations=operations(pending))
            result, pending = sort_outcomes(pending, response.body["items"])
            total.add(result)
            if not pending:
                break
            time.sleep(policy.delay(attempt))
        if pending:
            raise RuntimeError(f"{len(pending)} documents still failing after retries")
    return total
