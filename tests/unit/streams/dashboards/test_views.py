"""Definitions load and validate; partitions merge; panels render from published updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.models.updates import (
    LabelUpdate,
    ProgressUpdate,
    Update,
    WindowUpdate,
    decode,
    encode,
)
from streams.dashboards.settings import DEFINITIONS_DIR
from streams.dashboards.views import Dashboard, DashboardState, Panel, load_dashboards

START = 1772366400  # 12:00:00, a 15-minute boundary
NOW_MS = (START + 30) * 1000


def published(update: WindowUpdate | ProgressUpdate | LabelUpdate) -> Update | None:
    """An update as the API reads it off the topic: encoded by a worker, decoded."""
    _, value = encode(update)
    return decode(value)


def window(table: str, metric: str, partition: int, start: int, value: object) -> Update | None:
    return published(
        WindowUpdate(table=table, metric=metric, partition=partition, start=start, value=value)
    )


def progress(stream: str, partition: int, watermark_ms: int, dropped: int = 0) -> Update | None:
    return published(
        ProgressUpdate(
            stream=stream,
            partition=partition,
            watermark_ms=watermark_ms,
            events=10,
            dropped=dropped,
            last_source_ts_ms=watermark_ms + 5,
            max_lsn=1,
        )
    )


@pytest.fixture
def state() -> DashboardState:
    s = DashboardState()
    for update in [
        progress("orders", 0, NOW_MS, dropped=2),
        progress("interactions", 1, NOW_MS - 1000),
        window("counts_1m", "orders", 0, START, 2.0),
        window("counts_1m", "orders", 1, START, 3.0),
        window("counts_1m", "orders", 1, START - 60, 1.0),
        window("counts_1m", "revenue", 0, START, 100.0),
        window("counts_15m", "orders", 0, START - 840, 8.0),
        window("counts_15m", "revenue", 0, START - 840, 400.0),
        window("active_5m", "active_users", 0, START, ["1", "2"]),
        window("active_5m", "active_users", 2, START, ["2", "3"]),
        window("top_1m", "product_revenue", 0, START, {"5": 30.0, "6": 10.0}),
        window("top_1m", "product_revenue", 1, START - 60, {"6": 25.0}),
        window("funnel_15m", "page_views", 1, START, 50.0),
        window("funnel_15m", "add_to_cart", 1, START, 10.0),
        window("funnel_15m", "orders", 0, START, 4.0),
        published(LabelUpdate(id=5, name="Teapot", category="kitchen")),
    ]:
        s.apply(update)
    return s


def panel(**kw: object) -> Dashboard:
    return Dashboard(name="t", title="T", panels=[Panel(id="p", title="P", **kw)])


def only(state: DashboardState, dashboard: Dashboard) -> dict:
    return state.render(dashboard)["panels"][0]


def test_shipped_definitions_load() -> None:
    dashboards = load_dashboards(DEFINITIONS_DIR)
    assert {"sales", "engagement"} <= set(dashboards)


def test_unknown_metric_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ntitle: Bad\npanels:\n  - {id: x, title: X, type: stat, metric: nope}\n"
    )
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_dashboards(tmp_path)


def test_counters_sum_partitions_and_series_is_oldest_first(state: DashboardState) -> None:
    out = only(state, panel(type="series", metric="orders", range_minutes=3))
    assert out["value"] == 5.0
    assert out["series"] == [
        [(START - 120) * 1000, 0.0],
        [(START - 60) * 1000, 1.0],
        [START * 1000, 5.0],
    ]


def test_hopping_stat_is_the_window_ending_with_this_minute(state: DashboardState) -> None:
    assert only(state, panel(type="stat", metric="revenue", window="15m"))["value"] == 400.0
    assert only(state, panel(type="stat", metric="avg_order_value", window="15m"))["value"] == 50.0


def test_active_users_unite_partitions(state: DashboardState) -> None:
    assert only(state, panel(type="stat", metric="active_users", window="5m"))["value"] == 3.0


def test_top_sums_the_range_and_uses_labels(state: DashboardState) -> None:
    out = only(state, panel(type="top", metric="product_revenue", range_minutes=15, limit=2))
    assert out["items"] == [
        {"key": "6", "label": "product 6", "value": 35.0},
        {"key": "5", "label": "Teapot", "value": 30.0},
    ]


def test_funnel_and_dropped(state: DashboardState) -> None:
    stages = only(state, panel(type="funnel"))["stages"]
    assert [s["value"] for s in stages] == [50.0, 10.0, 4.0]
    assert stages[2]["from_previous"] == 0.4 and stages[2]["from_first"] == 0.08
    rendered = state.render(panel(type="stat", metric="dropped_late"))
    assert rendered["panels"][0]["value"] == 2 and rendered["dropped_late"] == 2
    assert rendered["last_event_ms"] == NOW_MS + 5


def test_empty_state_renders_without_values() -> None:
    out = only(DashboardState(), panel(type="series", metric="orders"))
    assert out["value"] is None and out["series"] == []


def test_update_records_round_trip_and_unknown_kinds_are_skipped() -> None:
    update = WindowUpdate(table="counts_1m", metric="orders", partition=2, start=60, value=3.0)
    key, value = encode(update)
    assert key == b"w|counts_1m|orders|2|60" and decode(value) == update
    assert encode(ProgressUpdate(stream="orders", partition=1))[0] == b"p|orders|1"
    assert decode(b'{"type": "future-kind", "x": 1}') is None
    state = DashboardState()
    state.apply(decode(b'{"type": "future-kind"}'))
    assert state.version == 0
