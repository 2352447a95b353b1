"""Telling stale documents from changes in flight: a difference counts once it holds still."""

from __future__ import annotations

import pytest

from indexers.documents import CHILDREN, LSN
from indexers.verify import Mismatch, Settling, reconcile, state


def stale(doc_id: str) -> Mismatch:
    return Mismatch(doc_id, "stale", "a", "b")


def test_a_difference_counts_once_its_document_held_still_long_enough() -> None:
    settling = Settling(settle_s=5)
    settling.observe(0, [stale("1"), stale("2")], {"1": (10, ()), "2": (20, ())})
    assert settling.settled(4) == set() and not settling.done(4)
    # Document 2 moved (the pipeline is still on it): its wait starts again.
    settling.observe(4, [stale("1"), stale("2")], {"1": (10, ()), "2": (21, ())})
    assert settling.settled(5) == {"1"} and not settling.done(5)
    assert settling.settled(9) == {"1", "2"} and settling.done(9)


def test_a_difference_that_went_away_is_forgotten() -> None:
    settling = Settling(settle_s=5)
    settling.observe(0, [stale("1")], {"1": (10, ())})
    settling.observe(3, [], {})
    assert settling.done(3) and settling.settled(10) == set()
    settling.observe(4, [stale("1")], {"1": (10, ())})  # back again: waits from now
    assert settling.settled(8) == set() and settling.settled(9) == {"1"}


def test_a_change_of_kind_restarts_the_wait() -> None:
    settling = Settling(settle_s=5)
    settling.observe(0, [Mismatch("1", "missing", "a", None)], {"1": None})
    settling.observe(4, [stale("1")], {"1": (10, ())})
    assert settling.settled(6) == set()


def test_no_settling_counts_every_difference_at_once() -> None:
    settling = Settling(settle_s=0)
    settling.observe(0, [stale("1")], {"1": (10, ())})
    assert settling.done(0) and settling.settled(0) == {"1"}


def test_state_follows_the_row_and_each_child() -> None:
    doc = {LSN: 10, CHILDREN: {"reviews": {"5": [12, [4]], "6": [11, None]}}}
    assert state(doc) == (10, (("reviews", "5", 12), ("reviews", "6", 11)))
    assert state(None) is None
    moved = {LSN: 10, CHILDREN: {"reviews": {"5": [13, [4]], "6": [11, None]}}}
    assert state(moved) != state(doc)


def test_reconcile_sorts_missing_extra_and_stale() -> None:
    report = reconcile("t", "i", {"1": "a", "2": "b", "10": "c"}, {"2": "x", "10": "c", "3": "d"})
    assert [(m.id, m.kind) for m in report.mismatches] == [
        ("1", "missing"),
        ("2", "stale"),
        ("3", "extra"),
    ]
    assert not report.ok


def test_verify_stops_when_differences_settle_or_its_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import indexers.verify as verify_module
    from indexers.verify import Report, verify

    rounds = iter(
        [
            # a hot row moving every round, and a stale one holding still
            ([stale("hot"), stale("old")], {"hot": (1, ()), "old": (5, ())}),
            ([stale("hot"), stale("old")], {"hot": (2, ()), "old": (5, ())}),
            ([stale("hot"), stale("old")], {"hot": (3, ()), "old": (5, ())}),
            ([stale("hot"), stale("old")], {"hot": (4, ()), "old": (5, ())}),
        ]
    )
    now = [0.0]

    def compare(*_: object) -> tuple[Report, dict[str, object]]:
        mismatches, states = next(rounds)
        return Report("t", "i", 2, 2, list(mismatches)), states

    monkeypatch.setattr(verify_module, "compare", compare)
    sleep = lambda s: now.__setitem__(0, now[0] + s)  # noqa: E731
    report = verify(
        "dsn", None, None, None, settle_s=2, within_s=3, clock=lambda: now[0], sleep=sleep
    )  # type: ignore[arg-type]
    assert [m.id for m in report.mismatches] == ["old"]
    assert [m.id for m in report.in_flight] == ["hot"]
    assert not report.ok
