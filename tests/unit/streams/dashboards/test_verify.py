"""Verifying dashboards: windows from source facts, the comparison, settling, the shop's facts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from headwater.models.updates import ProgressUpdate, WindowUpdate, decode, encode
from streams.dashboards import logic, truth
from streams.dashboards.reconcile import lower_bound
from streams.dashboards.settings import DEFINITIONS_DIR
from streams.dashboards.verify import (
    Fact,
    Report,
    Settling,
    aggregate,
    compare,
    dashboard_rows,
    dropped_by_stream,
    held,
    settle,
    window_starts,
)
from streams.dashboards.views import DashboardState, load_dashboards

START = 1772366400  # 12:00:00, a 15-minute boundary
SPECS = logic.WINDOWS_BY_TABLE


def publish(state: DashboardState, table: str, metric: str, partition: int, start: int,
            value: object) -> None:  # fmt: skip
    _, raw = encode(
        WindowUpdate(table=table, metric=metric, partition=partition, start=start, value=value)
    )
    state.apply(decode(raw))


@pytest.mark.parametrize("spec", logic.WINDOWS, ids=lambda s: s.table)
@pytest.mark.parametrize("second", [START, START + 59, START + 61, START + 899, START + 12345])
def test_window_starts_are_the_workers_windows(spec: logic.WindowSpec, second: int) -> None:
    assert list(window_starts(second, spec.size_s, spec.step_s)) == spec.starts(second * 1000)


def test_aggregate_sums_counters_breakdowns_and_sets_per_window() -> None:
    facts = [
        Fact(logic.ORDERS, START + 5),
        Fact(logic.REVENUE, START + 5, 25.5),
        Fact(logic.ORDERS, START + 70),
        Fact(logic.REVENUE, START + 70, 10.0),
        Fact(logic.PRODUCT_REVENUE, START + 5, 7.0, "1"),
        Fact(logic.PRODUCT_REVENUE, START + 6, 3.0, "1"),
        Fact(logic.ACTIVE_USERS, START + 5, 1.0, "9"),
        Fact(logic.ACTIVE_USERS, START + 200, 1.0, "9"),
        Fact(logic.ACTIVE_USERS, START + 301, 1.0, "8"),
    ]
    cells = aggregate(facts, logic.WINDOWS, START)
    assert cells["counts_1m", "orders", START, None] == 1.0
    assert cells["counts_1m", "revenue", START + 60, None] == 10.0
    # Hopping 15 min: the window beginning at START holds both orders; only windows beginning
    # at or after the lower bound exist (the one beginning at START - 60 would hold both too).
    assert cells["counts_15m", "revenue", START, None] == 35.5
    assert cells["counts_15m", "revenue", START + 60, None] == 10.0
    assert ("counts_15m", "revenue", START - 60, None) not in cells
    assert cells["funnel_15m", "orders", START, None] == 2.0
    assert cells["top_1m", "product_revenue", START, "1"] == 10.0
    assert cells["active_5m", "active_users", START, None] == frozenset({"9"})
    assert cells["active_5m", "active_users", START + 300, None] == frozenset({"8"})


def test_aggregate_skips_windows_before_the_lower_bound() -> None:
    cells = aggregate([Fact(logic.ORDERS, START + 5)], logic.WINDOWS, START + 60)
    assert all(key[2] >= START + 60 for key in cells)
    assert ("counts_1m", "orders", START, None) not in cells
    assert ("funnel_15m", "orders", START, None) not in cells


def test_held_merges_partitions_as_the_api_does() -> None:
    state = DashboardState()
    publish(state, "counts_1m", "orders", 0, START, 2.0)
    publish(state, "counts_1m", "orders", 1, START, 3.0)
    publish(state, "counts_1m", "orders", 1, START, 4.0)  # the latest value of a partition wins
    publish(state, "top_1m", "product_revenue", 0, START, {"1": 5.0})
    publish(state, "top_1m", "product_revenue", 2, START, {"1": 1.5, "2": 2.0})
    publish(state, "active_5m", "active_users", 0, START, ["7", "8"])
    publish(state, "active_5m", "active_users", 1, START, ["8", "9"])
    publish(state, "counts_1m", "orders", 0, START - 60, 9.0)  # before the bound
    cells = held(state, logic.WINDOWS, START)
    assert cells == {
        ("counts_1m", "orders", START, None): 6.0,
        ("top_1m", "product_revenue", START, "1"): 6.5,
        ("top_1m", "product_revenue", START, "2"): 2.0,
        ("active_5m", "active_users", START, None): frozenset({"7", "8", "9"}),
    }


def test_compare_classifies_every_cell() -> None:
    k = ("counts_1m", "orders", START)
    source = {
        (*k, None): 3.0,
        ("counts_1m", "revenue", START, None): 30.0,
        ("top_1m", "product_revenue", START, "1"): 10.0,
        ("counts_1m", "orders", START + 60, None): 1.0,
        ("counts_1m", "orders", START + 120, None): 1.0,
        ("active_5m", "active_users", START, None): frozenset({"1", "2"}),
    }
    dashboard = {
        (*k, None): 3.0,
        ("counts_1m", "revenue", START, None): 30.004,  # within half a cent
        ("top_1m", "product_revenue", START, "1"): 12.0,
        ("top_1m", "product_revenue", START, "2"): 1.0,
        ("counts_1m", "orders", START + 120, None): 0.0,  # retracted to zero: absent
        ("counts_1m", "orders", START + 180, None): 0.0,  # zero on both sides: no cell
        ("active_5m", "active_users", START, None): frozenset({"1", "3"}),
    }
    cells = {c.key: c for c in compare(source, dashboard)}
    status = {key: c.status for key, c in cells.items()}
    assert status == {
        ("counts_1m", "orders", START, None): "equal",
        ("counts_1m", "revenue", START, None): "equal",
        ("top_1m", "product_revenue", START, "1"): "differs",
        ("top_1m", "product_revenue", START, "2"): "extra",
        ("counts_1m", "orders", START + 60, None): "missing",
        ("counts_1m", "orders", START + 120, None): "missing",
        ("active_5m", "active_users", START, None): "differs",
    }
    differs = cells["top_1m", "product_revenue", START, "1"]
    assert (differs.source, differs.dashboard) == (10.0, 12.0)
    users = cells["active_5m", "active_users", START, None].to_json()
    assert (users["source"], users["dashboard"]) == (2, 2)
    assert (users["only_in_source"], users["only_in_dashboard"]) == (["2"], ["3"])


def test_a_shortfall_in_a_metric_with_late_drops_is_flagged_not_excused() -> None:
    source = {("counts_1m", "orders", START, None): 3.0, ("counts_1m", "clicks", START, None): 2.0}
    dashboard = {
        ("counts_1m", "orders", START, None): 2.0,
        ("counts_1m", "clicks", START, None): 1.0,
    }
    cells = {c.metric: c for c in compare(source, dashboard, late_metrics={"orders"})}
    assert cells["orders"].status == "differs" and cells["orders"].maybe_late
    assert cells["clicks"].status == "differs" and not cells["clicks"].maybe_late
    # More than the source is never a late drop.
    over = compare(source, {("counts_1m", "orders", START, None): 4.0}, late_metrics={"orders"})
    assert not any(c.maybe_late for c in over)


def test_settling_counts_a_difference_once_it_held_still() -> None:
    settling = Settling(settle_s=5.0)
    key = ("counts_1m", "orders", START, None)
    moving = compare({key: 3.0}, {key: 1.0})
    settling.observe(0.0, moving)
    assert settling.settled(4.0) == set() and not settling.done(4.0)
    settling.observe(4.0, compare({key: 3.0}, {key: 2.0}))  # it moved: the wait starts again
    assert settling.settled(8.0) == set()
    settling.observe(9.0, compare({key: 3.0}, {key: 2.0}))
    assert settling.settled(9.0) == {key} and settling.done(9.0)
    settling.observe(10.0, [])  # gone: nothing left to wait for
    assert settling.done(10.0)


def test_settle_moves_unsettled_differences_to_in_flight() -> None:
    held_still = ("counts_1m", "orders", START, None)
    moving = ("counts_1m", "orders", START + 60, None)
    equal = ("counts_1m", "orders", START + 120, None)
    cells = compare({held_still: 1.0, moving: 5.0, equal: 2.0}, {held_still: 2.0, equal: 2.0})
    settling = Settling(settle_s=3.0)
    settling.observe(0.0, [c for c in cells if c.key != moving])
    settling.observe(3.0, [c for c in cells if c.status != "equal"])
    report = settle(Report(START, cells), settling, 3.0)
    assert [c.key for c in report.differences] == [held_still]
    assert [c.key for c in report.in_flight] == [moving]
    assert report.counts() == {"equal": 1, "differs": 1, "missing": 0, "extra": 0, "in_flight": 1}
    assert not report.ok and not report.settled


def test_dashboard_rows_follow_the_definitions() -> None:
    dashboards = load_dashboards(DEFINITIONS_DIR)
    key = ("counts_1m", "orders", START, None)
    report = Report(START, compare({key: 1.0}, {key: 1.0}))
    rows = {(r["dashboard"], r["table"], r["metric"]): r for r in dashboard_rows(
        report, dashboards, logic.WINDOWS)}  # fmt: skip
    assert rows["sales", "counts_1m", "orders"]["equal"] == 1
    # The funnel panel compares its three stages, avg_order_value its orders and revenue.
    assert {("engagement", "funnel_15m", m) for m in ("page_views", "add_to_cart", "orders")} <= (
        rows.keys()
    )
    assert ("sales", "counts_15m", "orders") in rows
    # Progress figures (events, dropped_late) are not windowed cells.
    assert not any(metric in ("events", "dropped_late") for _, _, metric in rows)


def test_dropped_adds_up_partitions_per_stream() -> None:
    state = DashboardState()
    for stream, partition, dropped in (("orders", 0, 2), ("orders", 1, 1), ("interactions", 0, 0)):
        _, raw = encode(ProgressUpdate(stream=stream, partition=partition, dropped=dropped))
        state.apply(decode(raw))
    assert dropped_by_stream(state) == {"orders": 3, "interactions": 0}


def test_lower_bound_is_retention_or_since_whichever_is_later() -> None:
    assert lower_bound(START + 10_800, 10_800.0, None) == START + 120
    assert lower_bound(START + 10_800, 10_800.0, START + 5000.2) == START + 5001
    assert lower_bound(START + 10_800, 10_800.0, START) == START + 120


def test_shop_facts_from_the_source_rows() -> None:
    facts = set(
        truth.facts(
            orders=[(START, 2, Decimal("30.50"))],
            lines=[(START + 1, 7, "kitchen", Decimal("12.25"))],
            interactions=[
                (START + 2, "page_view", 3, 7, 2),
                (START + 2, "search", 4, None, 1),
                (START + 3, "page_view", 5, None, 1),
            ],
        )
    )
    assert facts == {
        Fact("orders", START, 2.0),
        Fact("revenue", START, 30.5),
        Fact("product_revenue", START + 1, 12.25, "7"),
        Fact("category_revenue", START + 1, 12.25, "kitchen"),
        Fact("page_views", START + 2, 2.0),
        Fact("product_views", START + 2, 2.0, "7"),
        Fact("active_users", START + 2, 1.0, "3"),
        Fact("searches", START + 2, 1.0),
        Fact("active_users", START + 2, 1.0, "4"),
        Fact("page_views", START + 3, 1.0),
        Fact("active_users", START + 3, 1.0, "5"),
    }


def test_every_windowed_metric_is_fed_by_one_stream() -> None:
    windowed = set().union(*(spec.metrics for spec in logic.WINDOWS))
    fed = [m for metrics in truth.STREAM_METRICS.values() for m in metrics]
    assert sorted(fed) == sorted(windowed)
