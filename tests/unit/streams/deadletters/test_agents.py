"""The redrive agent: each letter to its own consumer only, once, and what failed again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

from faust.types import TP

from headwater.resilience import DeadLetter
from streams.common import Record
from streams.deadletters.agents import Redrive
from streams.deadletters.logic import FAILED, REDRIVEN, UNKNOWN, Mark, Request, mark_key
from streams.transport import Batch


class Raw(NamedTuple):
    offset: int
    value: bytes


class Sender:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.sent.extend(letters)


class Consumer:
    """A consumer's redrive handler that fails on values containing "bad"."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.applied: list[int] = []

    async def __call__(self, records: Sequence[Record], last: Any) -> list[DeadLetter]:
        failed = []
        for record in records:
            if b"bad" in (record.value or b""):
                failed.append(record.dead_letter("still bad", "handle", self.name))
            else:
                self.applied.append(record.offset)
        return failed


def letter(consumer: str, offset: int, value: str = "good", attempts: int = 1) -> DeadLetter:
    return DeadLetter(
        source_topic="shop.public.interactions",
        partition=0,
        offset=offset,
        key='{"id":1}',
        value=value,
        error="boom",
        stage="handle",
        consumer=consumer,
        app="hw",
        attempts=attempts,
    )


def batch(*requests: Request) -> Batch:
    raws = [Raw(i, r.to_json()) for i, r in enumerate(requests)]
    return Batch(TP("hw-dlq-redrive", 0), raws, last=object())  # type: ignore[arg-type]


def setup() -> tuple[Redrive, Sender, dict[str, Any], Consumer, Consumer]:
    marks: dict[str, Any] = {}
    sender = Sender()
    redrive = Redrive(marks, sender)  # type: ignore[arg-type]
    dashboards, search = Consumer("dashboards:interactions"), Consumer("search:interactions")
    redrive.add(dashboards.name, dashboards)
    redrive.add(search.name, search)
    return redrive, sender, marks, dashboards, search


def test_a_letter_reaches_only_its_consumer_and_only_once() -> None:
    redrive, sender, marks, dashboards, search = setup()
    one = letter("search:interactions", 10)
    asyncio.run(redrive.take([batch(Request(one, "r1"))]))
    assert (search.applied, dashboards.applied) == ([10], [])
    assert Mark.from_json(marks[mark_key(one)]).outcome == REDRIVEN
    # Asked again (in a later batch, and twice in one): nothing is applied twice.
    asyncio.run(redrive.take([batch(Request(one, "r2"), Request(one, "r3"))]))
    assert search.applied == [10]
    mark = Mark.from_json(marks[mark_key(one)])
    assert (mark.outcome, mark.request, mark.repeat) == (REDRIVEN, "r3", True)
    assert not sender.sent


def test_twice_in_one_batch_is_applied_once_and_both_requests_are_answered() -> None:
    redrive, _, _, dashboards, _ = setup()
    one = letter("dashboards:interactions", 11)
    answered = []

    class Table(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            answered.append((value["request"], value["repeat"]))
            super().__setitem__(key, value)

    redrive.marks = Table()
    asyncio.run(redrive.take([batch(Request(one, "r1"), Request(one, "r2"))]))
    assert dashboards.applied == [11]
    assert answered == [("r1", False), ("r2", True)]


def test_a_letter_failing_again_is_a_letter_with_one_more_attempt() -> None:
    redrive, sender, marks, _, search = setup()
    bad = letter("search:interactions", 12, value="bad", attempts=2)
    asyncio.run(redrive.take([batch(Request(bad, "r1"))]))
    (again,) = sender.sent
    assert (again.consumer, again.attempts, again.first_seen) == (
        "search:interactions",
        3,
        bad.first_seen,
    )
    assert Mark.from_json(marks[mark_key(bad)]).outcome == FAILED
    assert search.applied == []
    # A failed letter can be redriven again (after the next fix).
    fixed = letter("search:interactions", 12, value="good now", attempts=3)
    asyncio.run(redrive.take([batch(Request(fixed, "r2"))]))
    assert search.applied == [12]
    assert Mark.from_json(marks[mark_key(fixed)]).outcome == REDRIVEN


def test_a_letter_for_a_consumer_the_worker_lacks_is_marked_unknown() -> None:
    redrive, sender, marks, dashboards, search = setup()
    gone = letter("search:retired", 13)
    asyncio.run(redrive.take([batch(Request(gone, "r1"))]))
    assert Mark.from_json(marks[mark_key(gone)]).outcome == UNKNOWN
    assert dashboards.applied == search.applied == [] and not sender.sent
