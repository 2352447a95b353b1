"""The bulk writer's calls: retried by the standard, through a breaker that opens on repeated
failures (whole requests refused, or every document answered 429) and lets a trial through
after its open period; the writer never gives up on an action."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from elastic_transport import ConnectionError as TransportConnectionError

from headwater.resilience import Breaker, BreakerPolicy, RetryPolicy
from indexers.bulk import Action, AsyncBulkWriter

FAST = RetryPolicy(initial_s=0.001, max_s=0.004, max_attempts=5)


def item(status: int, **extra: Any) -> dict[str, Any]:
    return {"index": {"status": status, "_id": "1", **extra}}


class ScriptedElasticsearch:
    """Answers bulk requests from a script: an exception to raise, or a list of items."""

    def __init__(self, script: list[Exception | list[dict[str, Any]]]) -> None:
        self.script = script
        self.calls = 0

    async def bulk(self, **kwargs: Any) -> SimpleNamespace:
        self.calls += 1
        answer = self.script.pop(0) if self.script else [item(201, _version=1)]
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(body={"items": answer})


def writer_on(es: ScriptedElasticsearch, breaker: Breaker) -> AsyncBulkWriter:
    return AsyncBulkWriter(es, policy=FAST, breaker=breaker)  # type: ignore[arg-type]


def action() -> Action:
    return Action("index", "things", "1", {"n": 1}, version=7)


def watch(breaker: Breaker) -> tuple[list[str], Callable[[], None]]:
    seen: list[str] = []

    def look() -> None:
        if not seen or seen[-1] != breaker.state:
            seen.append(breaker.state)

    return seen, look


async def write_watching(writer: AsyncBulkWriter) -> tuple[Any, list[str]]:
    seen, look = watch(writer.breaker)

    async def watcher() -> None:
        while True:
            look()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(watcher())
    try:
        result = await asyncio.wait_for(writer.write([action()]), timeout=10)
    finally:
        task.cancel()
    look()
    return result, seen


def refused() -> Exception:
    return TransportConnectionError("connection refused")


def test_a_short_outage_is_retried_without_opening_the_breaker() -> None:
    es = ScriptedElasticsearch([refused(), refused()])
    breaker = Breaker("es", BreakerPolicy(open_s=0.3))
    result, seen = asyncio.run(write_watching(writer_on(es, breaker)))
    assert result.written == 1 and es.calls == 3
    assert seen == ["closed"]


@pytest.mark.parametrize("failure", [refused, lambda: [item(429)]])
def test_five_failures_open_the_breaker_and_the_write_waits_it_out(
    failure: Callable[[], Any],
) -> None:
    es = ScriptedElasticsearch([failure() for _ in range(5)])
    breaker = Breaker("es", BreakerPolicy(open_s=0.3, successes=1))
    result, seen = asyncio.run(write_watching(writer_on(es, breaker)))
    assert seen == ["closed", "open", "closed"]
    assert result.written == 1
    assert es.calls == 6  # five failures, then nothing until the open period ended, then one


def test_some_documents_answered_429_are_resent_without_counting_as_a_failed_call() -> None:
    es = ScriptedElasticsearch([[item(429), item(201, _version=1)]])
    breaker = Breaker("es", BreakerPolicy(failures=1))
    writer = writer_on(es, breaker)
    writer.rounds = FAST
    actions = [action(), Action("index", "things", "2", {"n": 2}, version=7)]
    result = asyncio.run(asyncio.wait_for(writer.write(actions), timeout=10))
    assert result.written == 2 and es.calls == 2
    assert breaker.state == "closed"  # one failure would have opened this one
