"""Pure dashboard aggregation: change events to deltas, retractions, lateness, window folding.

No Faust here. The agents feed decoded change events in and write what comes out to the
windowed tables; the tests feed inline events. Times are epoch milliseconds from the source
(the order's `created_at`, the interaction's `occurred_at`), never the processing time.

How a change becomes numbers:
- an order (and its lines, joined by order id) has a *contribution*: the deltas it adds to the
  metrics while it counts. A change replaces the stored state, and the new contribution minus
  the old one is emitted, so an update corrects and a cancellation or delete retracts exactly
  what was counted before. A change whose LSN is not newer than the stored one is ignored.
- lateness bounds *new* facts only: an order or line first seen with an event time older than
  the partition's watermark (the latest event time seen) minus the allowed lateness is counted
  as dropped and never contributes; corrections to facts already counted always apply while
  their window is retained.
- interactions are insert-only facts: each one counts once. A fact can reach a worker more
  than once: Kafka delivers a record again after a worker crash (skipped: it is at or below
  the offset `Progress` has taken), Debezium sends changes again after a Connect crash (new
  offsets, a streaming position at or below one seen), and a new snapshot re-reads every row
  (`r`). The ids of the facts counted within the allowed lateness are kept (`SeenFacts` in
  the agents), and a change that may be such a copy (`Progress.may_repeat`) is looked up there.
  Older facts are dropped as late anyway.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from headwater.models.cdc import ChangeEvent, MalformedEvent

# Counter metrics (sums per window).
ORDERS = "orders"
REVENUE = "revenue"
PAGE_VIEWS = "page_views"
ADD_TO_CART = "add_to_cart"
SEARCHES = "searches"
CLICKS = "clicks"
# Breakdown metrics (sums per member per window).
PRODUCT_REVENUE = "product_revenue"
PRODUCT_VIEWS = "product_views"
CATEGORY_REVENUE = "category_revenue"
# Set metrics (distinct members per window).
ACTIVE_USERS = "active_users"

_INTERACTION_METRIC = {
    "page_view": PAGE_VIEWS,
    "add_to_cart": ADD_TO_CART,
    "search": SEARCHES,
    "click": CLICKS,
}

Kind = Literal["counter", "breakdown", "set"]


@dataclass(frozen=True)
class WindowSpec:
    """One windowed table: its window (seconds), what its values are and which metrics it holds."""

    table: str
    size_s: int
    step_s: int
    kind: Kind
    metrics: frozenset[str]

    @property
    def hopping(self) -> bool:
        return self.step_s != self.size_s

    def starts(self, at_ms: int) -> list[int]:
        """Start (epoch seconds) of every window containing `at_ms`; Faust's hopping ranges."""
        ts = at_ms // 1000
        first = (ts // self.step_s) * self.step_s - self.size_s + self.step_s
        return list(range(first, ts + 1, self.step_s))


WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec(
        "counts_1m",
        60,
        60,
        "counter",
        frozenset({ORDERS, REVENUE, PAGE_VIEWS, ADD_TO_CART, SEARCHES, CLICKS}),
    ),
    WindowSpec("counts_15m", 900, 60, "counter", frozenset({ORDERS, REVENUE})),
    WindowSpec("funnel_15m", 900, 900, "counter", frozenset({PAGE_VIEWS, ADD_TO_CART, ORDERS})),
    WindowSpec(
        "top_1m",
        60,
        60,
        "breakdown",
        frozenset({PRODUCT_REVENUE, PRODUCT_VIEWS, CATEGORY_REVENUE}),
    ),
    WindowSpec("active_5m", 300, 300, "set", frozenset({ACTIVE_USERS})),
)
WINDOWS_BY_TABLE = {spec.table: spec for spec in WINDOWS}


class Delta(NamedTuple):
    """A change to one metric at one event time; `member` names a product, category or user.

    A named tuple, not a dataclass: several are made per event on the hot path."""

    metric: str
    at_ms: int
    value: float
    member: str | None = None


# ---------------------------------------------------------------------------------------------
# Parsing: only the fields the aggregates need, without a full model validation per event (the
# interaction stream is the hot path of the benchmark).


def event_time_ms(value: Any, what: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp with offset (Debezium's timestamptz)."""
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} must be an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedEvent(f"{what} is not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{what} has no time zone: {value!r}")
    return int(parsed.timestamp() * 1000)


def _money(value: Any, what: str) -> float:
    try:
        amount = float(value)
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"{what} is not a number: {value!r}") from exc
    if not math.isfinite(amount):
        raise MalformedEvent(f"{what} is not finite: {value!r}")
    return amount


def _field(row: dict[str, Any], name: str, table: str) -> Any:
    try:
        return row[name]
    except KeyError:
        raise MalformedEvent(f"{table} row lacks {name!r}") from None


# ---------------------------------------------------------------------------------------------
# Watermark and progress per source partition.


@dataclass
class Progress:
    """What one agent has folded into the tables from one partition: the event-time watermark,
    counts, and the offset of the last record taken.

    Kept in a table next to the aggregates. A record at or below `offset` is already in them:
    Kafka delivers it again after a restart (its offset was not committed yet), and it is
    skipped instead of being counted twice. `last_commit_lsn` and `last_lsn` are the streaming
    position of the last change taken (`ChangeEvent.position`); `seen_first` and `seen_next`
    number the live entries of the partition's seen facts (`SeenFacts`)."""

    watermark_ms: int = 0
    events: int = 0
    dropped: int = 0
    last_source_ts_ms: int = 0
    max_lsn: int = 0
    offset: int = -1
    last_commit_lsn: int = 0
    last_lsn: int = 0
    seen_first: int = 0
    seen_next: int = 0

    def is_late(self, at_ms: int, lateness_ms: int) -> bool:
        return self.watermark_ms > 0 and at_ms < self.watermark_ms - lateness_ms

    def horizon_ms(self, lateness_ms: int) -> int:
        """Event times before this are late: no fact older than it is counted any more."""
        return self.watermark_ms - lateness_ms if self.watermark_ms > 0 else 0

    def may_repeat(self, event: ChangeEvent) -> bool:
        """Whether `event` may be a copy of a change taken before: a snapshot read, or a change
        streamed at or below the position taken (Debezium sends changes again after a crash).
        Without streaming positions (a connector not adding `sequence`), any change whose LSN
        is not above the highest taken may be one: concurrent transactions commit out of LSN
        order, so that costs more lookups but misses no copy."""
        if event.op == "r":
            return True
        if event.last_commit_lsn:
            return event.position <= (self.last_commit_lsn, self.last_lsn)
        return event.lsn <= self.max_lsn

    def note(self, event: ChangeEvent, at_ms: int | None, dropped: int) -> None:
        """Count `event` in place (one batch folds thousands; no new object per event)."""
        if at_ms is not None and at_ms > self.watermark_ms:
            self.watermark_ms = at_ms
        self.events += 1
        self.dropped += dropped
        if event.source_ts_ms > self.last_source_ts_ms:
            self.last_source_ts_ms = event.source_ts_ms
        if event.lsn > self.max_lsn:
            self.max_lsn = event.lsn
        if event.last_commit_lsn and event.position > (self.last_commit_lsn, self.last_lsn):
            self.last_commit_lsn, self.last_lsn = event.position

    def published(self) -> dict[str, int]:
        """What the progress updates carry (`ProgressUpdate`)."""
        return {
            "watermark_ms": self.watermark_ms,
            "events": self.events,
            "dropped": self.dropped,
            "last_source_ts_ms": self.last_source_ts_ms,
            "max_lsn": self.max_lsn,
            "offset": self.offset,
        }

    def to_json(self) -> dict[str, int]:
        return {
            **self.published(),
            "last_commit_lsn": self.last_commit_lsn,
            "last_lsn": self.last_lsn,
            "seen_first": self.seen_first,
            "seen_next": self.seen_next,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Progress:
        return cls(**data) if data else cls()


# ---------------------------------------------------------------------------------------------
# Orders and their lines: state per order id, contribution, retraction.


@dataclass(frozen=True)
class OrderFact:
    lsn: int
    status: str
    total: float
    created_ms: int
    customer_id: int
    deleted: bool
    counted: bool


@dataclass(frozen=True)
class LineFact:
    lsn: int
    product_id: int
    quantity: int
    unit_price: float
    created_ms: int
    category: str
    deleted: bool
    counted: bool


@dataclass(frozen=True)
class OrderState:
    """Last seen version of an order and of each of its lines (what is currently counted)."""

    order: OrderFact | None = None
    lines: dict[int, LineFact] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "order": None if self.order is None else self.order.__dict__,
            "lines": {str(k): v.__dict__ for k, v in self.lines.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OrderState:
        if not data:
            return cls()
        order = data.get("order")
        return cls(
            order=OrderFact(**order) if order else None,
            lines={int(k): LineFact(**v) for k, v in (data.get("lines") or {}).items()},
        )


def contribution(state: OrderState) -> list[Delta]:
    """What an order and its lines add to the metrics while they count."""
    out: list[Delta] = []
    order = state.order
    if order is not None and order.counted and not order.deleted and order.status != "cancelled":
        out.append(Delta(ORDERS, order.created_ms, 1.0))
        out.append(Delta(REVENUE, order.created_ms, order.total))
    # A line counts unless its order is known not to (cancelled, deleted or dropped as late);
    # lines often arrive before their order, which then usually confirms them.
    order_void = order is not None and (
        order.deleted or order.status == "cancelled" or not order.counted
    )
    if not order_void:
        for line in state.lines.values():
            if line.counted and not line.deleted:
                amount = line.quantity * line.unit_price
                out.append(Delta(PRODUCT_REVENUE, line.created_ms, amount, str(line.product_id)))
                out.append(Delta(CATEGORY_REVENUE, line.created_ms, amount, line.category))
    return out


def difference(old: Iterable[Delta], new: Iterable[Delta]) -> list[Delta]:
    """The deltas that turn `old`'s contribution into `new`'s (retractions are negative)."""
    net: dict[tuple[str, int, str | None], float] = defaultdict(float)
    for d in old:
        net[d.metric, d.at_ms, d.member] -= d.value
    for d in new:
        net[d.metric, d.at_ms, d.member] += d.value
    return [
        Delta(metric, at_ms, value, member)
        for (metric, at_ms, member), value in net.items()
        if abs(value) > 1e-9
    ]


@dataclass(frozen=True)
class Outcome:
    """The result of applying one change: the new state (None: unchanged), deltas, dropped."""

    state: OrderState | None
    deltas: list[Delta]
    at_ms: int | None
    dropped: int = 0


def apply_order(
    state: OrderState, event: ChangeEvent, progress: Progress, lateness_ms: int
) -> Outcome:
    """Apply an `orders` change to the state of its order."""
    row = event.row
    created_ms = event_time_ms(_field(row, "created_at", "orders"), "orders.created_at")
    previous = state.order
    if previous is not None and event.lsn <= previous.lsn:
        return Outcome(None, [], created_ms)
    status = _field(row, "status", "orders")
    if status not in ("pending", "paid", "shipped", "cancelled"):
        raise MalformedEvent(f"orders.status is not a known status: {status!r}")
    if previous is None:
        counted = not progress.is_late(created_ms, lateness_ms)
    else:
        counted = previous.counted
    fact = OrderFact(
        lsn=event.lsn,
        status=status,
        total=_money(_field(row, "total", "orders"), "orders.total"),
        created_ms=created_ms,
        customer_id=int(_field(row, "customer_id", "orders")),
        deleted=event.deleted,
        counted=counted,
    )
    new = replace(state, order=fact)
    dropped = 1 if previous is None and not counted else 0
    return Outcome(new, difference(contribution(state), contribution(new)), created_ms, dropped)


def apply_line(
    state: OrderState,
    event: ChangeEvent,
    category: str,
    progress: Progress,
    lateness_ms: int,
) -> Outcome:
    """Apply an `order_items` change (already routed by its order id) to its order's state."""
    row = event.row
    line_id = int(_field(event.key, "id", "order_items key"))
    created_ms = event_time_ms(_field(row, "created_at", "order_items"), "order_items.created_at")
    previous = state.lines.get(line_id)
    if previous is not None and event.lsn <= previous.lsn:
        return Outcome(None, [], created_ms)
    if previous is None:
        counted = not progress.is_late(created_ms, lateness_ms)
    else:
        counted = previous.counted
    try:
        quantity = int(_field(row, "quantity", "order_items"))
        product_id = int(_field(row, "product_id", "order_items"))
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"order_items row has a bad number: {exc}") from exc
    fact = LineFact(
        lsn=event.lsn,
        product_id=product_id,
        quantity=quantity,
        unit_price=_money(_field(row, "unit_price", "order_items"), "order_items.unit_price"),
        created_ms=created_ms,
        # The category the line was first counted under, so that a later retraction takes
        # the revenue back from the same category even if the product moved meanwhile.
        category=previous.category if previous is not None else category,
        deleted=event.deleted,
        counted=counted,
    )
    new = replace(state, lines={**state.lines, line_id: fact})
    dropped = 1 if previous is None and not counted else 0
    return Outcome(new, difference(contribution(state), contribution(new)), created_ms, dropped)


def order_id_of(event: ChangeEvent) -> int:
    """The id of the order an `orders` change is about (its key)."""
    try:
        return int(_field(event.key, "id", "orders key"))
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"orders key id is not a number: {exc}") from exc


def order_id_of_line(event: ChangeEvent) -> int:
    try:
        return int(_field(event.row, "order_id", "order_items"))
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"order_items.order_id is not a number: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Interactions: insert-only facts.


def fact_id(key: dict[str, Any]) -> str:
    """A fact's identity, from its primary key (one or more columns)."""
    if len(key) == 1:
        return str(next(iter(key.values())))
    return "|".join(str(value) for value in key.values())


def interaction_deltas(row: dict[str, Any]) -> tuple[int, list[Delta]]:
    """Event time and deltas of one new interaction."""
    at_ms = event_time_ms(_field(row, "occurred_at", "interactions"), "interactions.occurred_at")
    kind = _field(row, "kind", "interactions")
    metric = _INTERACTION_METRIC.get(kind)
    if metric is None:
        raise MalformedEvent(f"interactions.kind is not a known kind: {kind!r}")
    customer = str(_field(row, "customer_id", "interactions"))
    deltas = [Delta(metric, at_ms, 1.0), Delta(ACTIVE_USERS, at_ms, 1.0, customer)]
    product_id = row.get("product_id")
    if kind == "page_view" and product_id is not None:
        deltas.append(Delta(PRODUCT_VIEWS, at_ms, 1.0, str(product_id)))
    return at_ms, deltas


# ---------------------------------------------------------------------------------------------
# Folding a batch of deltas into one increment per table key and window, and merging it.

WindowKey = tuple[str, str, int]  # (table, metric, window start in epoch seconds)


def fold(deltas: Iterable[Delta], windows: Iterable[WindowSpec] = WINDOWS) -> dict[WindowKey, Any]:
    """Sum a batch of deltas per (table, metric, window): float, {member: float} or {member}.

    The deltas are first summed per metric, second and member (a batch of thousands of events
    spans a few seconds), then each sum is spread over the windows that contain its second."""
    by_metric: dict[str, list[WindowSpec]] = defaultdict(list)
    for spec in windows:
        for metric in spec.metrics:
            by_metric[metric].append(spec)
    sums: dict[tuple[str, int, str | None], float] = defaultdict(float)
    for metric, at_ms, value, member in deltas:
        sums[metric, at_ms // 1000, member] += value
    out: dict[WindowKey, Any] = {}
    for (metric, second, member), value in sums.items():
        for spec in by_metric.get(metric, ()):
            for start in spec.starts(second * 1000):
                key = (spec.table, metric, start)
                if spec.kind == "counter":
                    out[key] = out.get(key, 0.0) + value
                elif spec.kind == "breakdown":
                    members = out.setdefault(key, {})
                    name = member or ""
                    members[name] = members.get(name, 0.0) + value
                else:
                    out.setdefault(key, set()).add(member or "")
    return out


def _tidy(amount: float) -> float:
    # Sums of money: keep them at cents (and counts whole) despite float addition.
    return round(amount, 6)


def merge(kind: Kind, current: Any, increment: Any) -> Any:
    """The stored value of a window after adding a folded increment to it."""
    if kind == "counter":
        return _tidy((current or 0.0) + increment)
    if kind == "breakdown":
        merged = dict(current or {})
        for member, amount in increment.items():
            total = _tidy(merged.get(member, 0.0) + amount)
            if abs(total) < 1e-9:
                merged.pop(member, None)
            else:
                merged[member] = total
        return merged
    existing = set(current or ())
    if increment <= existing:
        return current
    return sorted(existing | increment)
