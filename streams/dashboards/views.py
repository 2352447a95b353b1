"""Dashboards as data: the panel definitions, the merged view of every partition, panel values.

Pure: the API feeds it the update records the workers publish (one per changed window value
per source partition, the progress of each partition, product labels) and asks it for a
dashboard's current values and recent series. Partial values of the partitions are merged here:
counters and breakdowns add up, sets of users are united (a user active on two partitions is
one user).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from headwater.models.updates import LabelUpdate, ProgressUpdate, Update, WindowUpdate
from streams.dashboards import logic

COUNTER_METRICS_1M = logic.WINDOWS_BY_TABLE["counts_1m"].metrics
HOPPING_METRICS = logic.WINDOWS_BY_TABLE["counts_15m"].metrics
BREAKDOWN_METRICS = logic.WINDOWS_BY_TABLE["top_1m"].metrics
AVG_ORDER_VALUE = "avg_order_value"
DROPPED_LATE = "dropped_late"
EVENTS = "events"

PanelType = Literal["stat", "series", "top", "funnel"]
Window = Literal["1m", "5m", "15m"]


def _table_for(metric: str, window: Window) -> str | None:
    """The windowed table that holds `metric` at `window`, None if there is none."""
    if window == "1m" and (metric in COUNTER_METRICS_1M or metric == AVG_ORDER_VALUE):
        return "counts_1m"
    if window == "15m" and (metric in HOPPING_METRICS or metric == AVG_ORDER_VALUE):
        return "counts_15m"
    if window == "5m" and metric == logic.ACTIVE_USERS:
        return "active_5m"
    return None


# The windowed values a derived panel is computed from.
_DERIVED = {AVG_ORDER_VALUE: (logic.ORDERS, logic.REVENUE)}
FUNNEL_TABLE = "funnel_15m"
FUNNEL_STAGES = (
    ("Viewed a product", logic.PAGE_VIEWS),
    ("Added to cart", logic.ADD_TO_CART),
    ("Ordered", logic.ORDERS),
)
TOP_TABLE = "top_1m"


class Panel(BaseModel):
    """One chart or figure of a dashboard, on a metric the streams already compute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    type: PanelType
    metric: str | None = None
    window: Window = "1m"
    # series: how far back the chart goes; top: the span summed before ranking.
    range_minutes: int = Field(default=60, ge=1, le=180)
    limit: int = Field(default=10, ge=1, le=50)
    unit: Literal["count", "money"] = "count"

    @model_validator(mode="after")
    def _known_metric(self) -> Panel:
        if self.type == "funnel":
            return self
        metric = self.metric or ""
        if self.type == "top":
            if metric not in BREAKDOWN_METRICS:
                raise ValueError(f"panel {self.id}: top needs one of {sorted(BREAKDOWN_METRICS)}")
        elif metric in (DROPPED_LATE, EVENTS):
            if self.type != "stat":
                raise ValueError(f"panel {self.id}: {metric} is only a stat")
        elif _table_for(metric, self.window) is None:
            raise ValueError(f"panel {self.id}: no metric {metric!r} at window {self.window}")
        return self

    def cells(self) -> set[tuple[str, str]]:
        """The (windowed table, metric) pairs this panel shows or is computed from; none for
        the progress figures (events, dropped), which are not windowed."""
        if self.type == "funnel":
            return {(FUNNEL_TABLE, metric) for _, metric in FUNNEL_STAGES}
        metric = self.metric or ""
        if self.type == "top":
            return {(TOP_TABLE, metric)}
        table = _table_for(metric, self.window)
        if table is None:
            return set()
        return {(table, m) for m in _DERIVED.get(metric, (metric,))}


class Dashboard(BaseModel):
    """A dashboard: one definition file listing its panels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    title: str
    description: str = ""
    panels: list[Panel]

    @model_validator(mode="after")
    def _unique_panels(self) -> Dashboard:
        ids = [p.id for p in self.panels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"dashboard {self.name}: panel ids repeat")
        return self

    def cells(self) -> set[tuple[str, str]]:
        """Every (windowed table, metric) pair the dashboard's panels show."""
        return set().union(*(panel.cells() for panel in self.panels))


def load_dashboards(directory: Path) -> dict[str, Dashboard]:
    """Every `*.yaml` definition in `directory`, by name; a bad file raises naming the file."""
    out: dict[str, Dashboard] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            dashboard = Dashboard.model_validate(yaml.safe_load(path.read_text()))
        except Exception as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
        if dashboard.name in out:
            raise ValueError(f"{path.name}: dashboard {dashboard.name!r} is defined twice")
        out[dashboard.name] = dashboard
    return out


def _merge_partials(kind: logic.Kind, partials: Iterable[Any]) -> Any:
    if kind == "counter":
        return sum(partials, 0.0)
    if kind == "breakdown":
        merged: dict[str, float] = {}
        for part in partials:
            for member, amount in part.items():
                merged[member] = merged.get(member, 0.0) + amount
        return merged
    users: set[str] = set()
    for part in partials:
        users.update(part)
    return users


class DashboardState:
    """The latest published values of every partition, merged on read."""

    def __init__(self, retention_s: float = 3 * 3600.0) -> None:
        self.retention_s = retention_s
        # (table, metric, window start s) -> {partition: value}
        self.windows: dict[tuple[str, str, int], dict[int, Any]] = {}
        # (stream, partition) -> progress fields
        self.progress: dict[tuple[str, int], dict[str, int]] = {}
        self.labels: dict[str, str] = {}
        self.version = 0

    def apply(self, update: Update | None) -> None:
        """Take in one published update record (`headwater.models.updates`)."""
        if isinstance(update, WindowUpdate):
            key = (update.table, update.metric, update.start)
            self.windows.setdefault(key, {})[update.partition] = update.value
        elif isinstance(update, ProgressUpdate):
            self.progress[update.stream, update.partition] = {
                "watermark_ms": update.watermark_ms,
                "events": update.events,
                "dropped": update.dropped,
                "last_source_ts_ms": update.last_source_ts_ms,
                "max_lsn": update.max_lsn,
            }
        elif isinstance(update, LabelUpdate):
            self.labels[str(update.id)] = update.name
        else:
            return
        self.version += 1

    def prune(self) -> None:
        """Forget windows that the workers no longer keep either."""
        now_ms = self.now_ms()
        if now_ms is None:
            return
        oldest = now_ms // 1000 - self.retention_s
        for key in [k for k in self.windows if k[2] < oldest]:
            del self.windows[key]

    def now_ms(self) -> int | None:
        """Event time of the latest event seen on any partition: the dashboards' 'now'."""
        marks = [p["watermark_ms"] for p in self.progress.values() if p["watermark_ms"]]
        return max(marks) if marks else None

    def last_source_ts_ms(self) -> int | None:
        stamps = [p["last_source_ts_ms"] for p in self.progress.values() if p["last_source_ts_ms"]]
        return max(stamps) if stamps else None

    def total(self, field: str) -> int:
        return sum(p[field] for p in self.progress.values())

    def value(self, table: str, metric: str, start: int) -> Any:
        spec = logic.WINDOWS_BY_TABLE[table]
        return _merge_partials(spec.kind, self.windows.get((table, metric, start), {}).values())

    # -----------------------------------------------------------------------------------------

    def render(self, dashboard: Dashboard) -> dict[str, Any]:
        """The dashboard's current values and recent series, as JSON-ready data."""
        now = self.now_ms()
        return {
            "name": dashboard.name,
            "title": dashboard.title,
            "description": dashboard.description,
            "now_ms": now,
            "last_event_ms": self.last_source_ts_ms(),
            "events": self.total("events"),
            "dropped_late": self.total("dropped"),
            "version": self.version,
            "panels": [self._panel(panel, now) for panel in dashboard.panels],
        }

    def _panel(self, panel: Panel, now: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": panel.id,
            "title": panel.title,
            "type": panel.type,
            "unit": panel.unit,
            "window": panel.window,
            "metric": panel.metric,
        }
        if panel.metric == DROPPED_LATE:
            out["value"] = self.total("dropped")
            return out
        if panel.metric == EVENTS:
            out["value"] = self.total("events")
            return out
        if now is None:
            out.update(value=None, series=[], items=[], stages=[])
            return out
        if panel.type == "top":
            out["items"] = self._top(panel, now)
        elif panel.type == "funnel":
            out["stages"] = self._funnel(now)
        else:
            series = self._series(panel, now)
            out["value"] = series[-1][1] if series else None
            if panel.type == "series":
                out["series"] = series
        return out

    def _point(self, panel: Panel, table: str, start: int) -> float | None:
        metric = panel.metric or ""
        if metric == AVG_ORDER_VALUE:
            orders = self.value(table, logic.ORDERS, start)
            revenue = self.value(table, logic.REVENUE, start)
            return round(revenue / orders, 2) if orders > 0 else None
        merged = self.value(table, metric, start)
        if isinstance(merged, set):
            return float(len(merged))
        return round(float(merged), 2)

    def _series(self, panel: Panel, now: int) -> list[list[Any]]:
        """(window start ms, value) for each window of the range, oldest first.

        For the hopping view a point is the window that ends with that minute, i.e. the sum
        of the 15 minutes up to it; the last point is "the last 15 minutes".
        """
        table = _table_for(panel.metric or "", panel.window)
        assert table is not None
        spec = logic.WINDOWS_BY_TABLE[table]
        newest = spec.starts(now)[0]
        steps = max(1, min(panel.range_minutes * 60 // spec.step_s, 180))
        if panel.type == "stat":
            steps = 1
        starts = [newest - i * spec.step_s for i in range(steps - 1, -1, -1)]
        return [[start * 1000, self._point(panel, table, start)] for start in starts]

    def _top(self, panel: Panel, now: int) -> list[dict[str, Any]]:
        spec = logic.WINDOWS_BY_TABLE[TOP_TABLE]
        newest = spec.starts(now)[0]
        totals: dict[str, float] = {}
        for i in range(panel.range_minutes):
            merged = self.value(TOP_TABLE, panel.metric or "", newest - i * spec.step_s)
            for member, amount in merged.items():
                totals[member] = totals.get(member, 0.0) + amount
        ranked = sorted(
            ((m, v) for m, v in totals.items() if v > 1e-9), key=lambda mv: (-mv[1], mv[0])
        )
        is_product = panel.metric in (logic.PRODUCT_REVENUE, logic.PRODUCT_VIEWS)
        return [
            {
                "key": member,
                "label": self.labels.get(member, f"product {member}") if is_product else member,
                "value": round(amount, 2),
            }
            for member, amount in ranked[: panel.limit]
        ]

    def _funnel(self, now: int) -> list[dict[str, Any]]:
        spec = logic.WINDOWS_BY_TABLE[FUNNEL_TABLE]
        start = spec.starts(now)[0]
        out: list[dict[str, Any]] = []
        first: float | None = None
        previous: float | None = None
        for label, metric in FUNNEL_STAGES:
            count = float(self.value(FUNNEL_TABLE, metric, start))
            first = count if first is None else first
            out.append(
                {
                    "label": label,
                    "value": count,
                    "from_previous": None if not previous else round(count / previous, 4),
                    "from_first": None if not first else round(count / first, 4),
                    "window_start_ms": start * 1000,
                }
            )
            previous = count
        return out


def stream_snapshots(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON snapshots in the lines of a dashboard's Server-Sent Events stream."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []
