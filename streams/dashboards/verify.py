"""Verifying the dashboards against their source: window sums from facts, comparison, settling.

Pure (no Kafka, no SQL): `reconcile.py` feeds it facts read from the source tables and the
values the workers published, one round at a time. Nothing here names a shop metric: the
windows and their kinds come from `logic.WINDOWS`, the cells each dashboard shows from its
definition file; what a source row adds to which metric is the one shop-specific part, in
`truth.py`.

What is compared, and what is not:
- a *cell* is one value of one windowed table: (table, metric, window start) for counters and
  sets, (table, metric, window start, member) for breakdowns (a product, a category). A cell is
  equal, differs (both values given), missing (the source has it, the dashboard does not) or
  extra (the reverse); a zero sum, an empty breakdown member and an empty set count as absent
  on both sides (a retraction leaves 0.0 behind, the source has no row). Sums compare within
  `tolerance` (half a cent by default: money adds up in floats on the worker); sets exactly.
- only windows that *begin* at or after `lower_s` are compared, on both sides: `lower_s` is the
  later of what the dashboards still retain (windows older than their retention are gone from
  the tables and the topic) and, for a worker started at the end of the topics, its start. A
  window that began before such a worker started holds only part of its facts by design, and
  a fact older than the worker's start can still reach it (an update to an order it never saw
  inserted is counted as new, or dropped as late); a window that begins after it holds only
  facts whose rows were written after it.
- late events: the worker drops a new fact whose time is older than its partition's watermark
  minus the allowed lateness, and reports only how many (per stream and partition), not in
  which windows. The ground truth counts every row, so a drop inside a compared window shows as
  a difference, and is one: the dashboard does not equal its source. It is not excused, but
  marked: the report carries the dropped counts per stream, and a differing cell whose
  dashboard value is *below* the source's in a metric fed by a stream that reported drops is
  flagged `maybe_late`. In the shop, event times are insert times, so a row written after the
  worker's start is late only if it reached the worker more than the allowed lateness after a
  later row of its partition; the drops of rows the worker never saw inserted fall in windows
  that began before its start, which are not compared.
- a window still changing is not called wrong: a differing cell counts once its two values
  held still for `settle_s` (`Settling`); one still moving at the end is in flight.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from streams.dashboards import logic
from streams.dashboards.views import Dashboard, DashboardState

Status = Literal["equal", "differs", "missing", "extra"]
STATUSES: tuple[Status, ...] = ("equal", "differs", "missing", "extra")
# (table, metric, window start in epoch seconds, member of a breakdown or None)
CellKey = tuple[str, str, int, str | None]
# Half a cent: sums of money are floats on the worker, and counts are whole numbers.
TOLERANCE = 0.005


class Fact(NamedTuple):
    """What one source row adds to one metric at one second (a member for breakdowns and sets:
    a product, a category, a user)."""

    metric: str
    second: int
    value: float = 1.0
    member: str | None = None


def window_starts(second: int, size_s: int, step_s: int) -> range:
    """Starts of the windows [start, start + size) with start a multiple of `step_s` that hold
    `second`: those in (second - size, second]."""
    return range(((second - size_s) // step_s + 1) * step_s, second + 1, step_s)


def window_label(spec: logic.WindowSpec) -> str:
    """How the dashboards name a window size: 1m, 5m, 15m."""
    return f"{spec.size_s // 60}m" if spec.size_s % 60 == 0 else f"{spec.size_s}s"


def aggregate(
    facts: Iterable[Fact], specs: Iterable[logic.WindowSpec], lower_s: int
) -> dict[CellKey, Any]:
    """Every cell of the windows beginning at or after `lower_s`, from source facts: a float
    for counters and breakdown members, a frozenset of members for sets."""
    by_metric: dict[str, list[logic.WindowSpec]] = defaultdict(list)
    for spec in specs:
        for metric in spec.metrics:
            by_metric[metric].append(spec)
    sums: dict[CellKey, float] = defaultdict(float)
    members: dict[CellKey, set[str]] = defaultdict(set)
    for metric, second, value, member in facts:
        for spec in by_metric.get(metric, ()):
            for start in window_starts(second, spec.size_s, spec.step_s):
                if start < lower_s:
                    continue
                if spec.kind == "counter":
                    sums[spec.table, metric, start, None] += value
                elif spec.kind == "breakdown":
                    sums[spec.table, metric, start, member or ""] += value
                else:
                    members[spec.table, metric, start, None].add(member or "")
    out: dict[CellKey, Any] = dict(sums)
    out.update({key: frozenset(users) for key, users in members.items()})
    return out


def held(
    state: DashboardState, specs: Iterable[logic.WindowSpec], lower_s: int
) -> dict[CellKey, Any]:
    """The cells the dashboards hold (every partition's published value merged as the API
    merges them), for the windows beginning at or after `lower_s`."""
    kinds = {spec.table: spec.kind for spec in specs}
    out: dict[CellKey, Any] = {}
    for table, metric, start in list(state.windows):
        kind = kinds.get(table)
        if kind is None or start < lower_s:
            continue
        value = state.value(table, metric, start)
        if kind == "counter":
            out[table, metric, start, None] = float(value)
        elif kind == "breakdown":
            for member, amount in value.items():
                out[table, metric, start, member] = float(amount)
        else:
            out[table, metric, start, None] = frozenset(str(u) for u in value)
    return out


@dataclass(frozen=True)
class Cell:
    key: CellKey
    status: Status
    source: Any  # None when the source has nothing there
    dashboard: Any
    maybe_late: bool = False

    @property
    def table(self) -> str:
        return self.key[0]

    @property
    def metric(self) -> str:
        return self.key[1]

    def mark(self) -> tuple[Any, ...]:
        """What must hold still for a difference to count."""
        return (self.status, self.source, self.dashboard)

    def to_json(self) -> dict[str, Any]:
        table, metric, start, member = self.key
        out: dict[str, Any] = {
            "table": table,
            "metric": metric,
            "window_start": start,
            "member": member,
            "status": self.status,
            "source": _plain(self.source),
            "dashboard": _plain(self.dashboard),
        }
        if isinstance(self.source, frozenset) or isinstance(self.dashboard, frozenset):
            ours, theirs = self.source or frozenset(), self.dashboard or frozenset()
            out["source"], out["dashboard"] = len(ours), len(theirs)
            out["only_in_source"] = sorted(ours - theirs)[:20]
            out["only_in_dashboard"] = sorted(theirs - ours)[:20]
        if self.maybe_late:
            out["maybe_late"] = True
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def _present(value: Any, tolerance: float) -> bool:
    if value is None:
        return False
    if isinstance(value, frozenset):
        return bool(value)
    return abs(float(value)) > tolerance


def _equal(ours: Any, theirs: Any, tolerance: float) -> bool:
    if isinstance(ours, frozenset) or isinstance(theirs, frozenset):
        return bool(ours == theirs)
    return abs(float(ours) - float(theirs)) <= tolerance


def compare(
    source: Mapping[CellKey, Any],
    dashboard: Mapping[CellKey, Any],
    tolerance: float = TOLERANCE,
    late_metrics: Collection[str] = (),
) -> list[Cell]:
    """Every cell either side has, classified; `late_metrics` are those fed by a stream that
    reported late drops (a cell of theirs where the dashboard is short is flagged)."""
    out: list[Cell] = []
    for key in sorted(source.keys() | dashboard.keys(), key=_order):
        ours, theirs = source.get(key), dashboard.get(key)
        has_ours, has_theirs = _present(ours, tolerance), _present(theirs, tolerance)
        if not has_ours and not has_theirs:
            continue
        if not has_theirs:
            status: Status = "missing"
        elif not has_ours:
            status = "extra"
        elif _equal(ours, theirs, tolerance):
            status = "equal"
        else:
            status = "differs"
        short = status == "missing" or (
            status == "differs" and not isinstance(ours, frozenset) and _below(theirs, ours)
        )
        out.append(
            Cell(
                key,
                status,
                ours if has_ours else None,
                theirs if has_theirs else None,
                maybe_late=short and key[1] in late_metrics,
            )
        )
    return out


def _below(theirs: Any, ours: Any) -> bool:
    return float(theirs) < float(ours)


def _order(key: CellKey) -> tuple[str, str, int, str]:
    return (key[0], key[1], key[2], key[3] or "")


class Settling:
    """Which differing cells have held still for `settle_s` (fed one round at a time)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._since: dict[CellKey, tuple[float, tuple[Any, ...]]] = {}

    def observe(self, now: float, differing: Iterable[Cell]) -> None:
        """Record a round; a cell whose values moved starts its wait again."""
        seen: dict[CellKey, tuple[float, tuple[Any, ...]]] = {}
        for cell in differing:
            before = self._since.get(cell.key)
            mark = cell.mark()
            seen[cell.key] = before if before is not None and before[1] == mark else (now, mark)
        self._since = seen

    def settled(self, now: float) -> set[CellKey]:
        return {k for k, (since, _) in self._since.items() if now - since >= self.settle_s}

    def done(self, now: float) -> bool:
        return len(self.settled(now)) == len(self._since)


@dataclass
class Report:
    """One verification: the compared cells of the last round, the differences that were
    still moving at the end (in flight), and the late drops the worker reported."""

    lower_s: int
    cells: list[Cell] = field(default_factory=list)
    in_flight: list[Cell] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def differences(self) -> list[Cell]:
        return [c for c in self.cells if c.status != "equal"]

    @property
    def ok(self) -> bool:
        """Nothing differs (cells still moving at the end are not called wrong)."""
        return not self.differences

    @property
    def settled(self) -> bool:
        """Nothing differs and nothing was still moving: the dashboards equal their source."""
        return self.ok and not self.in_flight

    def counts(self, cells: Collection[tuple[str, str]] | None = None) -> dict[str, int]:
        """equal, differs, missing, extra and in_flight, over the (table, metric) `cells`
        (default: all)."""

        def wanted(cell: Cell) -> bool:
            return cells is None or (cell.table, cell.metric) in cells

        out: dict[str, int] = {status: 0 for status in STATUSES}
        for cell in self.cells:
            if wanted(cell):
                out[cell.status] += 1
        out["in_flight"] = sum(wanted(c) for c in self.in_flight)
        return out


def settle(report: Report, settling: Settling, now: float) -> Report:
    """`report` with the differences not yet settled moved to in flight."""
    settled = settling.settled(now)
    moving = [c for c in report.cells if c.status != "equal" and c.key not in settled]
    kept = [c for c in report.cells if c.status == "equal" or c.key in settled]
    return Report(report.lower_s, kept, moving, report.dropped)


def dashboard_rows(
    report: Report, dashboards: Mapping[str, Dashboard], specs: Iterable[logic.WindowSpec]
) -> list[dict[str, Any]]:
    """Per dashboard, window and metric: how many windows compared and the counts."""
    labels = {spec.table: window_label(spec) for spec in specs}
    rows: list[dict[str, Any]] = []
    for name, dashboard in sorted(dashboards.items()):
        for table, metric in sorted(dashboard.cells()):
            if table not in labels:
                continue
            counts = report.counts({(table, metric)})
            windows = {
                c.key[2]
                for c in (*report.cells, *report.in_flight)
                if (c.table, c.metric) == (table, metric)
            }
            rows.append(
                {
                    "dashboard": name,
                    "table": table,
                    "window": labels[table],
                    "metric": metric,
                    "windows": len(windows),
                    **counts,
                }
            )
    return rows


def dropped_by_stream(state: DashboardState) -> dict[str, int]:
    """The late drops each stream's partitions reported, added up per stream."""
    out: dict[str, int] = defaultdict(int)
    for (stream, _), progress in state.progress.items():
        out[stream] += int(progress.get("dropped", 0))
    return dict(out)
