"""Redriving dead letters in the worker: each letter back to the one consumer that failed on it.

Why not publish the record to its source topic again: every consumer of that topic would read
it, and the ones that had succeeded would apply it twice (a dashboard would count an
interaction twice). Why not have the command apply the consumer's logic itself: the dashboards'
state lives in the workers' tables, partition by partition, and only the worker owning a
partition may write it. So the command (`headwater dlq redrive`) writes each chosen letter to
its app's redrive topic (`<app>-dlq-redrive`, an internal topic of the app, in the partition
of the letter's source record), and the worker hands it to the handler its consumer registered
here (`Redrive.add`), and to no other. The redrive topic has as many partitions as the change
topics and the tables, so the worker owning a redrive partition owns the same partition of the
dashboards' tables, and a handler writes its tables as the redrive record (`writing_as`).

Idempotent: every letter handled gets a mark in a table of the app (`dlq-redriven`, keyed by
consumer, topic, partition and offset; its changelog is compacted and survives restarts). A
letter marked `redriven` is never handed over again, whoever asks, however often. A letter that
fails again is sent as a dead letter once more, with one more attempt and its first_seen kept
(the record carries its letter: `Record.previous`), and marked `failed`, so it can be redriven
after the next fix. Every mark names the request that asked, which is how the command follows
its progress (it reads the table's changelog).

Safe: handlers keep their consumer's ordering rules. Search writes carry the change's LSN as
their version (an older change loses to the document the index holds); the dashboards apply a
change to an order, a line or a product only if its LSN is newer than the one they hold, and an
interaction is an insert-only fact that counts once (the mark sees to that).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TableT

from headwater.resilience import DeadLetter
from streams.common import RAW, DeadLetterSender, Record
from streams.deadletters.logic import (
    FAILED,
    MARKS_TABLE,
    REDRIVEN,
    UNKNOWN,
    Mark,
    Request,
    mark_key,
    redrive_topic,
    repeated,
)
from streams.transport import App, Batch, writing_as

log = logging.getLogger(__name__)

# The lane of the redrive agent: a redrive never holds up the live agents' lanes.
LANE = "redrive"

# Records redriven to one consumer, each carrying its letter (`Record.previous`), and the
# redrive record they came in (tables are written as it): the letters of those that failed
# again. Raising instead fails the whole batch, as an agent's exception does.
RedriveHandler = Callable[[Sequence[Record], Any], Awaitable[list[DeadLetter]]]


@dataclass
class Counters:
    requests: int = 0
    redriven: int = 0
    failed: int = 0
    repeats: int = 0
    unknown: int = 0


@dataclass
class Redrive:
    """The redrive agent of one app: the consumers' handlers and the table of marks."""

    marks: TableT
    dead_letters: DeadLetterSender
    handlers: dict[str, RedriveHandler] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    def add(self, consumer: str, handler: RedriveHandler) -> None:
        if consumer in self.handlers:
            raise ValueError(f"two consumers named {consumer!r}")
        self.handlers[consumer] = handler

    async def take(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            await self._take(batch)

    async def _take(self, batch: Batch) -> None:
        requests = []
        for raw in batch.records:
            try:
                requests.append(Request.from_json(raw.value))
            except (ValueError, KeyError, TypeError) as exc:
                where = f"{batch.tp.topic}[{batch.tp.partition}]@{raw.offset}"
                log.error("redrive request %s is unreadable, skipped: %s", where, exc)
        self.counters.requests += len(requests)
        now = datetime.now(UTC)
        per_consumer: dict[str, list[tuple[Record, str]]] = {}
        marks: list[tuple[str, Mark]] = []  # in order: a key asked twice is written twice
        asked_again: list[tuple[str, str]] = []  # (key, request) asked twice in this batch
        handed: set[str] = set()
        for request in requests:
            letter = request.letter
            key = mark_key(letter)
            if key in handed:
                asked_again.append((key, request.request))
                continue
            held = self.marks.get(key)
            mark = repeated(Mark.from_json(held) if held else None, request.request)
            if mark is not None:
                self.counters.repeats += 1
                marks.append((key, mark))
            elif letter.consumer not in self.handlers:
                log.error("redrive of %s to %s: no such consumer here", letter.where,
                          letter.consumer)  # fmt: skip
                self.counters.unknown += 1
                marks.append((key, Mark(UNKNOWN, letter.attempts, now, request.request)))
            else:
                handed.add(key)
                per_consumer.setdefault(letter.consumer, []).append(
                    (Record.of_letter(letter), request.request)
                )
        failed: list[DeadLetter] = []
        outcomes: dict[str, Mark] = {}
        for consumer, items in per_consumer.items():
            again = await self.handlers[consumer]([record for record, _ in items], batch.last)
            failed += again
            by_key = {mark_key(x): x for x in again}
            for record, request_id in items:
                assert record.previous is not None
                key = mark_key(record.previous)
                again_letter = by_key.get(key)
                if again_letter is None:
                    self.counters.redriven += 1
                    outcomes[key] = Mark(REDRIVEN, record.previous.attempts, now, request_id)
                else:
                    self.counters.failed += 1
                    outcomes[key] = Mark(FAILED, record.previous.attempts, now, request_id)
                    log.warning("redrive of %s to %s failed again (attempt %d): %s",
                                again_letter.where, consumer, again_letter.attempts,
                                again_letter.error)  # fmt: skip
                marks.append((key, outcomes[key]))
        for key, request_id in asked_again:
            self.counters.repeats += 1
            first = outcomes[key]
            marks.append((key, replace(first, request=request_id, repeat=True)))
        if failed:
            await self.dead_letters.send(failed)
        with writing_as(batch.last):
            for key, mark in marks:
                self.marks[key] = mark.to_json()


def register(app: App, dead_letters: DeadLetterSender, partitions: int) -> Redrive:
    """The app's redrive topic, its table of marks and the agent between them; the consumers
    add their handlers to what is returned."""
    topic = app.topic(redrive_topic(app.conf.id), partitions=partitions, internal=True, **RAW)
    marks = app.Table(
        MARKS_TABLE,
        default=None,
        partitions=partitions,
        help="What became of each dead letter redriven to its consumer (streams.deadletters)",
    )
    redrive = Redrive(marks, dead_letters)
    app.lane(LANE, max_records=1000)
    app.batch_agent(topic, LANE)(redrive.take)

    @app.page("/dlq/stats/")
    async def dlq_stats(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json({**asdict(redrive.counters), "consumers": sorted(redrive.handlers)})

    return redrive
