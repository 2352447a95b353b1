"""Pure aggregation: retractions, duplicates, lateness, windows and folding."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.models.cdc import ChangeEvent, MalformedEvent
from streams.dashboards import logic
from streams.dashboards.logic import Delta, OrderState, Progress

T0 = "2026-03-01T12:00:30+00:00"
T0_MS = 1772366430000
MIN = 60_000


def order(
    lsn: int,
    *,
    status: str = "paid",
    total: str = "40.00",
    op: str = "c",
    deleted: bool = False,
    created_at: str = T0,
    oid: int = 7,
) -> ChangeEvent:
    return ChangeEvent(
        table="orders",
        op=op,
        lsn=lsn,
        source_ts_ms=lsn,
        deleted=deleted,
        key={"id": oid},
        row={
            "id": oid,
            "customer_id": 3,
            "status": status,
            "total": total,
            "created_at": created_at,
            "updated_at": created_at,
        },
    )


def line(
    lsn: int,
    *,
    item: int = 1,
    qty: int = 2,
    price: str = "10.00",
    product: int = 5,
    deleted: bool = False,
    created_at: str = T0,
) -> ChangeEvent:
    return ChangeEvent(
        table="order_items",
        op="d" if deleted else "c",
        lsn=lsn,
        source_ts_ms=lsn,
        deleted=deleted,
        key={"id": item},
        row={
            "id": item,
            "order_id": 7,
            "product_id": product,
            "quantity": qty,
            "unit_price": price,
            "created_at": created_at,
        },
    )


def totals(deltas: list[Delta]) -> dict[tuple[str, str | None], float]:
    out: dict[tuple[str, str | None], float] = {}
    for d in deltas:
        out[d.metric, d.member] = out.get((d.metric, d.member), 0.0) + d.value
    return out


def run(
    events: list[tuple[str, ChangeEvent]], progress: Progress | None = None, lateness_ms: int = MIN
) -> tuple[OrderState, list[Delta], int]:
    state, deltas, dropped = OrderState(), [], 0
    progress = progress or Progress()
    for kind, event in events:
        if kind == "order":
            out = logic.apply_order(state, event, progress, lateness_ms)
        else:
            out = logic.apply_line(state, event, "garden", progress, lateness_ms)
        if out.state is not None:
            state = out.state
        deltas += out.deltas
        dropped += out.dropped
    return state, deltas, dropped


def test_new_order_counts_once_at_its_creation_minute() -> None:
    _, deltas, _ = run([("order", order(10))])
    assert totals(deltas) == {("orders", None): 1.0, ("revenue", None): 40.0}
    assert {d.at_ms for d in deltas} == {T0_MS}


def test_update_of_total_emits_the_difference() -> None:
    _, deltas, _ = run([("order", order(10)), ("order", order(11, total="55.50"))])
    assert totals(deltas) == {("orders", None): 1.0, ("revenue", None): 55.5}


def test_cancelled_order_and_its_lines_stop_counting() -> None:
    _, deltas, _ = run(
        [
            ("line", line(9)),
            ("order", order(10)),
            ("order", order(12, status="cancelled")),
        ]
    )
    assert all(abs(v) < 1e-9 for v in totals(deltas).values())


def test_deleted_order_is_retracted() -> None:
    _, deltas, _ = run([("order", order(10)), ("order", order(11, op="d", deleted=True))])
    assert all(abs(v) < 1e-9 for v in totals(deltas).values())


def test_duplicate_and_older_events_are_ignored() -> None:
    state, deltas, _ = run(
        [
            ("order", order(10)),
            ("order", order(12, total="60.00")),
            ("order", order(12, total="60.00")),
            ("order", order(11, status="cancelled")),
        ]
    )
    assert totals(deltas) == {("orders", None): 1.0, ("revenue", None): 60.0}
    assert state.order is not None and state.order.lsn == 12


def test_lines_count_product_and_category_revenue() -> None:
    _, deltas, _ = run(
        [("order", order(10)), ("line", line(11)), ("line", line(12, item=2, product=6))]
    )
    assert totals(deltas)[("product_revenue", "5")] == 20.0
    assert totals(deltas)[("category_revenue", "garden")] == 40.0


def test_deleted_line_is_retracted_with_its_original_category() -> None:
    state = OrderState()
    first = logic.apply_line(state, line(11), "garden", Progress(), MIN)
    assert first.state is not None
    second = logic.apply_line(first.state, line(12, deleted=True), "kitchen", Progress(), MIN)
    assert totals(first.deltas + second.deltas) == {
        ("product_revenue", "5"): 0.0,
        ("category_revenue", "garden"): 0.0,
    }


def test_late_new_order_is_dropped_and_its_later_cancel_changes_nothing() -> None:
    progress = Progress(watermark_ms=T0_MS + 10 * MIN)
    _, deltas, dropped = run(
        [("order", order(10)), ("order", order(11, status="cancelled"))], progress
    )
    assert dropped == 1
    assert deltas == []


def test_order_within_lateness_counts() -> None:
    progress = Progress(watermark_ms=T0_MS + MIN // 2)
    _, deltas, dropped = run([("order", order(10))], progress)
    assert dropped == 0 and totals(deltas)[("orders", None)] == 1.0


def test_correction_to_a_counted_order_applies_even_when_old() -> None:
    state, _, _ = run([("order", order(10))])
    late_progress = Progress(watermark_ms=T0_MS + 30 * MIN)
    out = logic.apply_order(state, order(11, status="cancelled"), late_progress, MIN)
    assert totals(out.deltas) == {("orders", None): -1.0, ("revenue", None): -40.0}


def test_state_round_trips_through_json() -> None:
    state, _, _ = run([("order", order(10)), ("line", line(11))])
    assert OrderState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    "row, message",
    [
        ({"kind": "page_view", "customer_id": 1}, "occurred_at"),
        ({"kind": "dance", "customer_id": 1, "occurred_at": T0}, "kind"),
        ({"kind": "click", "customer_id": 1, "occurred_at": "yesterday"}, "ISO-8601"),
        ({"kind": "click", "customer_id": 1, "occurred_at": "2026-03-01T12:00:00"}, "time zone"),
    ],
)
def test_bad_interactions_raise_malformed(row: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        logic.interaction_deltas(row)


def test_page_view_counts_view_product_and_user() -> None:
    at, deltas = logic.interaction_deltas(
        {"kind": "page_view", "customer_id": 4, "product_id": 9, "occurred_at": T0}
    )
    assert at == T0_MS
    assert {(d.metric, d.member) for d in deltas} == {
        ("page_views", None),
        ("active_users", "4"),
        ("product_views", "9"),
    }


def test_window_starts_tumbling_and_hopping() -> None:
    minute = logic.WINDOWS_BY_TABLE["counts_1m"]
    hopping = logic.WINDOWS_BY_TABLE["counts_15m"]
    assert minute.starts(T0_MS) == [1772366400]
    starts = hopping.starts(T0_MS)
    assert len(starts) == 15 and starts[-1] == 1772366400 and starts[0] == 1772366400 - 840


def test_fold_sums_per_window_and_merge_applies_increments() -> None:
    deltas = [
        Delta("orders", T0_MS, 1.0),
        Delta("orders", T0_MS + 1000, 1.0),
        Delta("orders", T0_MS + MIN, 1.0),
        Delta("revenue", T0_MS, 9.99),
        Delta("product_revenue", T0_MS, 5.0, "1"),
        Delta("product_revenue", T0_MS, 2.0, "1"),
        Delta("active_users", T0_MS, 1.0, "3"),
        Delta("active_users", T0_MS, 1.0, "3"),
    ]
    folded = logic.fold(deltas)
    start = 1772366400
    assert folded["counts_1m", "orders", start] == 2.0
    assert folded["counts_1m", "orders", start + 60] == 1.0
    assert folded["counts_15m", "orders", start] == 3.0
    assert folded["top_1m", "product_revenue", start] == {"1": 7.0}
    assert folded["active_5m", "active_users", 1772366400 - 0] == {"3"}
    assert logic.merge("counter", 0.1, 0.2) == 0.3
    assert logic.merge("breakdown", {"1": 7.0, "2": 1.0}, {"1": -7.0}) == {"2": 1.0}
    assert logic.merge("set", ["3"], {"4", "3"}) == ["3", "4"]


def test_progress_tracks_watermark_and_lateness() -> None:
    event = order(10)
    p = Progress()
    p.note(event, T0_MS, 0)
    p.note(event, T0_MS - MIN, 1)
    assert p.watermark_ms == T0_MS and p.events == 2 and p.dropped == 1
    assert p.is_late(T0_MS - 2 * MIN, MIN) and not p.is_late(T0_MS - MIN, MIN)
    assert Progress.from_json(p.to_json()) == p


def test_progress_notes_in_place_and_keeps_the_offset_taken() -> None:
    p = Progress()
    assert p.offset == -1  # nothing taken yet: every record counts
    p.note(order(10), T0_MS, 0)
    p.offset = 41
    assert (p.events, p.watermark_ms, p.offset) == (1, T0_MS, 41)
    assert Progress.from_json(p.to_json()) == p
    # Progress written before offsets were kept reads as "nothing taken".
    legacy = {k: v for k, v in p.to_json().items() if k != "offset"}
    assert Progress.from_json(legacy).offset == -1


def test_fold_shares_window_starts_without_mixing_tables() -> None:
    deltas = [Delta("orders", T0_MS, 1.0), Delta("orders", T0_MS + 10, 1.0)]
    folded = logic.fold(deltas)
    assert folded[("counts_1m", "orders", T0_MS // 1000 - 30)] == 2.0  # 12:00:00
    hopping = [k for k in folded if k[0] == "counts_15m"]
    assert len(hopping) == 15 and all(folded[k] == 2.0 for k in hopping)


def _streamed(lsn: int, last_commit: int = 0, op: str = "c") -> ChangeEvent:
    return ChangeEvent(
        table="interactions",
        op=op,
        lsn=lsn,
        source_ts_ms=0,
        deleted=False,
        key={"id": lsn},
        row={},
        last_commit_lsn=last_commit,
    )


def test_a_change_may_repeat_at_or_below_the_streaming_position_taken() -> None:
    p = Progress()
    # Two transactions committed out of LSN order: the later commit has the lower LSN.
    for event in (_streamed(120, last_commit=100), _streamed(110, last_commit=130)):
        assert not p.may_repeat(event)
        p.note(event, None, 0)
    assert (p.last_commit_lsn, p.last_lsn) == (130, 110)
    # Debezium sends both again after a crash: both may be copies, a new one is not.
    assert p.may_repeat(_streamed(120, last_commit=100))
    assert p.may_repeat(_streamed(110, last_commit=130))
    assert not p.may_repeat(_streamed(105, last_commit=140))
    # A snapshot read always may be; it does not move the streaming position.
    assert p.may_repeat(_streamed(999, op="r"))
    p.note(_streamed(999, op="r"), None, 0)
    assert (p.last_commit_lsn, p.last_lsn) == (130, 110)


def test_without_streaming_positions_any_change_not_above_the_highest_lsn_may_repeat() -> None:
    p = Progress()
    p.note(_streamed(120), None, 0)
    assert p.may_repeat(_streamed(110))  # maybe a concurrent commit, maybe a copy: looked up
    assert p.may_repeat(_streamed(120))
    assert not p.may_repeat(_streamed(121))


def test_progress_keeps_its_bookkeeping_apart_from_what_it_publishes() -> None:
    p = Progress(seen_first=2, seen_next=5, last_commit_lsn=7, last_lsn=8, offset=3)
    assert Progress.from_json(p.to_json()) == p
    assert set(p.published()) == {
        "watermark_ms", "events", "dropped", "last_source_ts_ms", "max_lsn", "offset"
    }  # fmt: skip
    # Progress written before the bookkeeping existed still reads.
    assert Progress.from_json(p.published()).seen_next == 0


def test_fact_ids_name_single_and_composite_keys() -> None:
    assert logic.fact_id({"id": 42}) == "42"
    assert logic.fact_id({"tenant": "a", "id": 42}) == "a|42"
