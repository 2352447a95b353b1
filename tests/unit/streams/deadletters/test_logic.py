"""Dead letters, pure: merging a record's letters, selecting, --since, marks and progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headwater.resilience import DeadLetter
from streams.common import Record
from streams.deadletters.logic import (
    FAILED,
    OPEN,
    REDRIVEN,
    Mark,
    Progress,
    Request,
    Selection,
    counts,
    current,
    find,
    key_matches,
    mark_key,
    parse_since,
    pretty_value,
    repeated,
    select,
    status,
)

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def letter(
    consumer: str = "search:products",
    offset: int = 5,
    key: str = '{"id":42}',
    attempts: int = 1,
    first: datetime = T0,
    last: datetime | None = None,
    error: str = "boom",
    app: str = "headwater",
) -> DeadLetter:
    return DeadLetter(
        source_topic="shop.public.products",
        partition=1,
        offset=offset,
        key=key,
        value='{"id": 42, "name": "x"}',
        error=error,
        stage="index:products",
        consumer=consumer,
        app=app,
        attempts=attempts,
        first_seen=first,
        last_seen=last or first,
    )


def test_a_record_failing_again_keeps_first_seen_and_counts_the_attempt() -> None:
    first = letter()
    record = Record.of_letter(first)
    assert (record.topic, record.partition, record.offset) == ("shop.public.products", 1, 5)
    again = record.dead_letter("still broken", "index:products", "search:products")
    assert again.attempts == 2 and again.first_seen == T0 and again.last_seen > T0
    assert again.error == "still broken" and again.ident == first.ident
    # The same record failing for another consumer is that consumer's first letter.
    other = record.dead_letter("no", "decode", "dashboards:products")
    assert other.attempts == 1 and other.consumer == "dashboards:products"
    assert other.ident != first.ident and other.id != first.id


def test_current_merges_each_records_letters_per_consumer() -> None:
    later = T0 + timedelta(minutes=5)
    letters = [
        letter(attempts=2, first=T0, last=later, error="second"),
        letter(attempts=1, first=T0, error="first"),
        letter(consumer="dashboards:products"),
        letter(offset=6, first=T0 + timedelta(minutes=1)),
    ]
    merged = current(letters)
    assert [(x.consumer, x.offset, x.attempts) for x in merged] == [
        ("dashboards:products", 5, 1),
        ("search:products", 5, 2),
        ("search:products", 6, 1),
    ]
    (twice,) = [x for x in merged if x.attempts == 2]
    assert (twice.first_seen, twice.last_seen, twice.error) == (T0, later, "second")


def test_since_takes_durations_and_timestamps() -> None:
    now = T0
    assert parse_since("30m", now) == T0 - timedelta(minutes=30)
    assert parse_since("1h30m", now) == T0 - timedelta(minutes=90)
    assert parse_since("2d", now) == T0 - timedelta(days=2)
    assert parse_since("90s", now) == T0 - timedelta(seconds=90)
    assert parse_since("2025-04-30T10:00", now) == datetime(2025, 4, 30, 10, tzinfo=UTC)
    zoned = parse_since("2025-04-30 10:00:00+02:00", now)
    assert zoned == datetime(2025, 4, 30, 8, tzinfo=UTC)
    for bad in ("", "yesterday", "5 parsecs", "10x"):
        with pytest.raises(ValueError, match="--since"):
            parse_since(bad, now)


def test_key_matches_the_key_or_its_values() -> None:
    assert key_matches('{"id":42}', '{"id":42}')
    assert key_matches('{"id": 42}', "42")
    assert key_matches('{"order_id": 7, "line": 2}', "7,2")
    assert not key_matches('{"id":42}', "4")
    assert not key_matches(None, "42")
    assert not key_matches("not json", "42")


def test_selection_by_app_since_key_consumer_and_status() -> None:
    old = letter(offset=1, key='{"id":1}')
    new = letter(offset=2, key='{"id":2}', first=T0 + timedelta(hours=1))
    dash = letter(consumer="dashboards:products", offset=3)
    other_app = letter(offset=4, app="hw-test")
    done = letter(offset=5)
    marks = {mark_key(done): Mark(REDRIVEN, 1, T0)}
    letters = [old, new, dash, other_app, done]

    def offsets(selection: Selection) -> list[int]:
        return [x.offset for x in select(letters, marks, selection)]

    assert offsets(Selection(app="headwater", statuses=frozenset({OPEN}))) == [1, 3, 2]
    assert offsets(Selection(app="headwater")) == [1, 3, 5, 2]
    assert offsets(Selection(since=T0 + timedelta(minutes=30))) == [2]
    assert offsets(Selection(key="2")) == [2]
    assert offsets(Selection(consumer="dashboards:*")) == [3]
    assert offsets(Selection(consumer="search:products", app="hw-test")) == [4]


def test_a_letter_that_failed_after_its_redrive_is_open_again() -> None:
    first = letter()
    marks = {mark_key(first): Mark(REDRIVEN, 1, T0)}
    assert status(first, marks) == REDRIVEN
    assert status(letter(attempts=2), marks) == OPEN
    assert status(first, {mark_key(first): Mark(FAILED, 1, T0)}) == OPEN
    assert counts([first, letter(consumer="dashboards:orders")], marks) == {
        "search:products": {REDRIVEN: 1},
        "dashboards:orders": {OPEN: 1},
    }


def test_a_letter_redriven_already_is_not_handed_over_again() -> None:
    assert repeated(None, "r2") is None
    assert repeated(Mark(FAILED, 1, T0, "r1"), "r2") is None
    again = repeated(Mark(REDRIVEN, 1, T0, "r1"), "r2")
    assert again == Mark(REDRIVEN, 1, T0, "r2", repeat=True)
    assert Mark.from_json(again.to_json()) == again


def test_progress_takes_only_its_own_answers_once() -> None:
    a, b = letter(offset=1), letter(offset=2)
    progress = Progress.of([a, b], "r1")
    assert not progress.note(mark_key(a), Mark(REDRIVEN, 1, T0, "r0"))  # an older request's
    assert not progress.note("elsewhere", Mark(REDRIVEN, 1, T0, "r1"))
    assert progress.note(mark_key(a), Mark(REDRIVEN, 1, T0, "r1"))
    assert not progress.note(mark_key(a), Mark(FAILED, 1, T0, "r1"))
    assert not progress.done
    assert progress.summary()["pending"] == 1
    assert progress.note(mark_key(b), Mark(REDRIVEN, 1, T0, "r1", repeat=True))
    assert progress.done
    assert progress.summary() == {
        "asked": 2, "redriven": 1, "failed": 0, "already": 1, "unknown": 0, "pending": 0,
    }  # fmt: skip


def test_ids_are_short_stable_and_found_by_prefix() -> None:
    one = letter()
    assert len(one.id) == 10 and one.id == letter(error="other", attempts=3).id
    assert find([one, letter(offset=9)], one.id[:6]) == [one]


def test_requests_round_trip_and_values_print_readably() -> None:
    request = Request(letter(), "r1")
    assert Request.from_json(request.to_json()) == request
    assert '"name": "x"' in pretty_value('{"id": 42, "name": "x"}')
    assert pretty_value("\\x00not json") == "\\x00not json"
    assert "tombstone" in pretty_value(None)


def test_letters_written_before_they_named_consumers_still_read() -> None:
    legacy = (
        b'{"source_topic":"t","partition":0,"offset":3,"key":null,"value":"x",'
        b'"error":"e","stage":"decode","failed_at":"2025-05-01T12:00:00Z"}'
    )
    old = DeadLetter.from_json(legacy)
    assert old.first_seen == old.last_seen == T0 and old.consumer == "" and old.attempts == 1
