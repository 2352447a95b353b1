"""Lag per stage and its state, from looks given as data (streams.status.logic)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.latency import Histogram
from streams.status.logic import (
    Offsets,
    ProgressTracker,
    Row,
    Slot,
    consumer_row,
    consumer_rows,
    exit_code,
    format_bytes,
    format_ms,
    sink_row,
    source_row,
    state_of,
    table_rows,
    wal_row,
    worker_state,
    worst,
)

NOW = 1_700_000_000_000.0
OK_MS = 5_000.0


def offsets(partition: int, committed: int | None, high: int, waiting_age_s: float | None = None):
    ts = None if waiting_age_s is None else NOW - waiting_age_s * 1000
    return Offsets("shop.public.products", partition, committed, 0, high, ts)


def test_state_of_a_stage() -> None:
    assert state_of(0, advancing=False, ok_lag_ms=OK_MS) == "ok"
    assert state_of(OK_MS, advancing=False, ok_lag_ms=OK_MS) == "ok"
    assert state_of(OK_MS + 1, advancing=True, ok_lag_ms=OK_MS) == "busy"
    assert state_of(OK_MS + 1, advancing=False, ok_lag_ms=OK_MS) == "stalled"
    assert state_of(None, advancing=False, ok_lag_ms=OK_MS) == "stalled"


def test_worst_state_wins() -> None:
    assert worst(["ok", "busy", "ok"]) == "busy"
    assert worst(["busy", "down", "stalled"]) == "down"
    assert worst([]) == "ok"


def test_a_caught_up_group_is_ok_with_no_lag() -> None:
    same = [offsets(0, 10, 10), offsets(1, 5, 5)]
    row = consumer_row("shop.public.products", same, same, NOW, OK_MS, 3)
    assert (row.state, row.lag_ms, row.behind) == ("ok", 0.0, 0)


def test_lag_in_time_is_the_age_of_the_oldest_waiting_record() -> None:
    earlier = [offsets(0, 10, 30, 40.0), offsets(1, 5, 6, 2.0)]
    later = [offsets(0, 20, 40, 30.0), offsets(1, 5, 7, 2.0)]
    row = consumer_row("shop.public.products", earlier, later, NOW, OK_MS, 3)
    assert row.behind == 20 + 2
    assert row.lag_ms == pytest.approx(30_000)
    assert row.state == "busy"  # ten records committed in between
    assert "+10 committed" in row.detail


def test_behind_and_nothing_committed_is_stalled() -> None:
    look = [offsets(0, 10, 30, 40.0)]
    row = consumer_row("shop.public.products", look, [offsets(0, 10, 50, 43.0)], NOW, OK_MS, 3)
    assert (row.state, row.behind) == ("stalled", 40)


def test_a_recent_backlog_is_in_flight_not_stalled() -> None:
    """Records behind whose oldest arrived within ok_lag: a worker between commits."""
    row = consumer_row("t", [offsets(0, 10, 12, 0.5)], [offsets(0, 10, 14, 1.0)], NOW, OK_MS, 3)
    assert row.state == "ok"


def test_no_committed_offset_counts_from_the_first_record_kept() -> None:
    row = consumer_row("t", [], [offsets(0, None, 7, 60.0)], NOW, OK_MS, 3)
    assert (row.behind, row.state) == (7, "stalled")


def test_behind_with_an_unreadable_waiting_record_is_judged_by_movement() -> None:
    later = [offsets(0, 12, 30, None)]
    busy = consumer_row("t", [offsets(0, 10, 30)], later, NOW, OK_MS, 3)
    stalled = consumer_row("t", later, later, NOW, OK_MS, 3)
    assert (busy.state, busy.lag_ms, stalled.state) == ("busy", None, "stalled")


def test_rows_per_topic() -> None:
    other = Offsets("shop.public.reviews", 0, 3, 0, 3)
    rows = consumer_rows([], [offsets(0, 1, 1), other], NOW, OK_MS, 3)
    assert [r.name for r in rows] == ["shop.public.products", "shop.public.reviews"]


def slot(wal: int, sent: int | None, restart: int = 100, **kw: Any) -> Slot:
    return Slot("headwater_shop", kw.pop("active", True), wal, restart, sent, **kw)


def test_source_caught_up_reads_past_where_the_wal_was() -> None:
    row = source_row("shop-source", "RUNNING", "s", slot(1000, 990), slot(1200, 1000), 42.0)
    assert (row.state, row.lag_ms, row.behind) == ("ok", 42.0, 200)


def test_source_behind_but_reading_is_busy_and_not_reading_is_stalled() -> None:
    busy = source_row("c", "RUNNING", "s", slot(5000, 1000), slot(6000, 3000), 900.0)
    stalled = source_row("c", "RUNNING", "s", slot(5000, 1000), slot(6000, 1000), 900.0)
    assert (busy.state, stalled.state) == ("busy", "stalled")


@pytest.mark.parametrize(
    ("state", "later", "why"),
    [
        ("FAILED", slot(1, 1), "connector failed"),
        (None, slot(1, 1), "connector missing"),
        ("RUNNING", None, "no slot s"),
        ("RUNNING", slot(1, None, active=False), "slot s inactive"),
        ("RUNNING", slot(1, 1, wal_status="lost"), "lost its WAL"),
    ],
)
def test_source_down(state: str | None, later: Slot | None, why: str) -> None:
    row = source_row("c", state, "s", later, later, None)
    assert row.state == "down"
    assert why in row.detail


def test_retained_wal_under_the_warning_is_ok() -> None:
    row = wal_row("s", None, slot(10_100, 10_100, restart=100), warn_bytes=20_000)
    assert (row.state, row.behind, row.unit) == ("ok", 10_000, "bytes")


def test_retained_wal_over_the_warning_busy_while_it_moves_stalled_when_not() -> None:
    earlier = slot(10_000, None, restart=100, active=False)
    grown = slot(50_000, None, restart=100, active=False)
    moving = slot(50_000, 49_000, restart=200)
    assert wal_row("s", earlier, grown, warn_bytes=1000).state == "stalled"
    assert wal_row("s", earlier, moving, warn_bytes=1000).state == "busy"
    assert wal_row("s", earlier, None, warn_bytes=1000).state == "down"


def stats(*ms: tuple[float, float]) -> dict[str, Any]:
    """A worker's `/search/stats/` after records taking (to lane, to ack) milliseconds."""
    fetched, acked = Histogram(), Histogram()
    for to_lane, to_ack in ms:
        fetched.observe(to_lane)
        acked.observe(to_ack)
    return {"stages_ms": {"fetched": fetched.snapshot(), "acked": acked.snapshot()}}


def test_sink_lag_is_what_the_worker_wrote_between_the_looks() -> None:
    earlier = stats((10, 5000))
    later = stats((10, 5000), *[(20, 120)] * 19)
    ready = {"ready": True, "state": "ok", "checks": {}}
    row = sink_row("worker 0", earlier, later, ready)
    assert row.state == "ok"
    assert row.lag_ms is not None and 100 < row.lag_ms <= 125  # the old 5 s record is not in it
    assert "19 written" in row.detail and "mean 100 ms" in row.detail


def test_sink_row_takes_the_workers_own_state_and_names_failing_checks() -> None:
    ready = {
        "ready": False,
        "state": "stalled",
        "checks": {"lag": {"ok": False, "reason": "stalled: oldest 20 s"}},
    }
    row = sink_row("worker 0", stats(), stats(), ready)
    assert row.state == "stalled"
    assert "lag (stalled: oldest 20 s)" in row.detail
    assert sink_row("worker 0", None, None, None).state == "down"


def test_worker_tracker_busy_while_committing_stalled_when_not() -> None:
    tracker = ProgressTracker(window_s=10, ok_lag_ms=OK_MS)
    tp = ("shop.public.products", 0)
    tracker.observe(0.0, {tp: 100})
    # Too soon to tell: behind, but no look a whole window old.
    early = tracker.lag(5.0, {tp: (100, 500)}, NOW, NOW - 20_000)
    assert early.state == "busy"
    tracker.observe(5.0, {tp: 100})
    tracker.observe(10.0, {tp: 100})
    committing = tracker.lag(11.0, {tp: (150, 500)}, NOW, NOW - 20_000)
    stuck = tracker.lag(11.0, {tp: (100, 500)}, NOW, NOW - 20_000)
    assert (committing.state, committing.behind) == ("busy", 350)
    assert (stuck.state, stuck.behind, stuck.lag_ms) == ("stalled", 400, 20_000)
    assert "nothing committed in 10 s" in stuck.reason
    caught_up = tracker.lag(11.0, {tp: (500, 500)}, NOW, None)
    assert (caught_up.state, caught_up.lag_ms) == ("ok", 0.0)


def test_worker_tracker_keeps_only_what_it_needs() -> None:
    tracker = ProgressTracker(window_s=10, ok_lag_ms=OK_MS)
    for t in range(100):
        tracker.observe(float(t), {("t", 0): t})
    assert len(tracker._looks) <= 12


def test_worker_state_from_lag_and_failing_checks() -> None:
    assert worker_state("ok", []) == "ok"
    assert worker_state("busy", []) == "busy"
    assert worker_state("ok", ["rebalancing"]) == "busy"
    assert worker_state("stalled", ["lag"]) == "stalled"
    # Any other failing check (say an open circuit breaker) means nothing gets written.
    assert worker_state("ok", ["breaker:elasticsearch"]) == "stalled"


def test_exit_code_names_stalled_and_down() -> None:
    ok, busy = Row("kafka", "a", "ok"), Row("kafka", "b", "busy")
    assert exit_code([ok, busy]) == 0
    assert exit_code([ok, Row("kafka", "c", "stalled")]) == 2
    assert exit_code([Row("worker", "w", "down"), Row("kafka", "c", "stalled")]) == 3


def test_formatting_for_people() -> None:
    times = [format_ms(v) for v in (None, 42.4, 3_250, 900_000)]
    assert times == ["-", "42 ms", "3.2 s", "15.0 min"]
    sizes = [format_bytes(v) for v in (None, 900, 2048, 3 * 1024**3)]
    assert sizes == ["-", "900 B", "2.0 KiB", "3.0 GiB"]
    row = Row("kafka", "t", "busy", 3_250, 12, "records", "+3 committed in 3 s")
    assert table_rows([row]) == [
        ("kafka", "t", "busy", "3.2 s", "12 records", "+3 committed in 3 s")
    ]
