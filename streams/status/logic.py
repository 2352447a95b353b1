"""How far behind each stage of the pipeline is, in time, and its state: pure, from samples.

Stages: source commit -> Kafka (Debezium reading the WAL through its replication slot),
Kafka -> worker (a consumer group's committed offsets), worker -> sink (the worker's stage
histograms), and the WAL a slot retains. Each becomes a `Row` with a state:

- "ok": not behind, or behind by at most `ok_lag_ms` (records in flight, not a backlog);
- "busy": behind, and advancing: it moved between two looks;
- "stalled": behind, and nothing moved between two looks;
- "down": the thing that should advance is not there (connector not running, slot inactive,
  worker unreachable).

Every function takes the two looks (or a tracker of them) and the time as arguments: no clock,
no I/O. `streams.status.probe` takes the looks; `headwater status` and the worker's `/ready/`
page show the rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from streams.latency import quantile, since

State = Literal["ok", "busy", "stalled", "down"]
# From best to worst: a summary is the worst of its parts.
STATES: tuple[State, ...] = ("ok", "busy", "stalled", "down")


def worst(states: Iterable[State]) -> State:
    return max(states, key=STATES.index, default="ok")


def state_of(lag_ms: float | None, advancing: bool, ok_lag_ms: float) -> State:
    """A stage that is behind by `lag_ms` (None: behind, by an unknown time)."""
    if lag_ms is not None and lag_ms <= ok_lag_ms:
        return "ok"
    return "busy" if advancing else "stalled"


@dataclass(frozen=True)
class Row:
    """One stage of one thing: its state, how far behind in time and in records or bytes."""

    stage: Literal["source", "kafka", "worker", "wal"]
    name: str
    state: State
    lag_ms: float | None = None
    behind: int | None = None
    unit: str = ""  # of `behind`: "records" or "bytes"
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- Kafka -> worker -------------------------------------------------------------------------


@dataclass(frozen=True)
class Offsets:
    """One partition as a consumer group sees it at one look."""

    topic: str
    partition: int
    committed: int | None  # the next offset the group reads; None: it committed none
    low: int
    high: int
    # The Kafka timestamp (epoch ms) of the record at the group's position: the oldest one it
    # has not processed. None when there is none (caught up) or it could not be read.
    waiting_ts_ms: float | None = None

    @property
    def position(self) -> int:
        """Where the group reads next (from the first record kept when it committed none)."""
        return self.low if self.committed is None else max(self.committed, self.low)

    @property
    def behind(self) -> int:
        return max(0, self.high - self.position)


def consumer_row(
    topic: str,
    earlier: Sequence[Offsets],
    later: Sequence[Offsets],
    now_ms: float,
    ok_lag_ms: float,
    interval_s: float,
) -> Row:
    """Kafka -> worker for one topic: records behind, the age of the oldest waiting record,
    and whether the group committed anything between the two looks."""
    behind = sum(p.behind for p in later)
    ages = [max(0.0, now_ms - p.waiting_ts_ms) for p in later if p.behind and p.waiting_ts_ms]
    unknown = any(p.behind and not p.waiting_ts_ms for p in later)
    lag_ms = None if unknown else max(ages, default=0.0)
    before = {p.partition: p.position for p in earlier}
    committed = sum(max(0, p.position - before.get(p.partition, p.position)) for p in later)
    state: State = "ok" if behind == 0 else state_of(lag_ms, committed > 0, ok_lag_ms)
    detail = f"+{committed} committed in {interval_s:g} s"
    return Row("kafka", topic, state, 0.0 if behind == 0 else lag_ms, behind, "records", detail)


def consumer_rows(
    earlier: Sequence[Offsets],
    later: Sequence[Offsets],
    now_ms: float,
    ok_lag_ms: float,
    interval_s: float,
) -> list[Row]:
    """`consumer_row` for every topic of the later look, by name."""
    topics = sorted({p.topic for p in later})
    return [
        consumer_row(
            topic,
            [p for p in earlier if p.topic == topic],
            [p for p in later if p.topic == topic],
            now_ms,
            ok_lag_ms,
            interval_s,
        )
        for topic in topics
    ]


# -- source commit -> Kafka, and retained WAL ------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A replication slot at one look (LSNs as byte positions in the WAL)."""

    name: str
    active: bool
    wal_lsn: int  # the server's flushed WAL position at the look
    restart_lsn: int | None  # the oldest WAL the slot keeps
    sent_lsn: int | None = None  # how far its walsender has decoded and sent (None: no sender)
    wal_status: str | None = None  # PostgreSQL's: reserved, extended, unreserved, lost

    @property
    def retained_bytes(self) -> int | None:
        return None if self.restart_lsn is None else max(0, self.wal_lsn - self.restart_lsn)


def source_row(
    connector: str,
    connector_state: str | None,
    slot_name: str,
    earlier: Slot | None,
    later: Slot | None,
    newest_delay_ms: float | None,
) -> Row:
    """Source commit -> Kafka for one connector.

    Caught up when, at the later look, Debezium had read past where the WAL ended at the
    earlier one (so it is behind by less than the interval); else busy if it read anything in
    between, stalled if not. The time shown is the delay of the newest record on its topics
    (its Kafka timestamp minus its source commit time).
    """
    if connector_state != "RUNNING":
        return Row("source", connector, "down", newest_delay_ms, detail=f"connector "
                   f"{(connector_state or 'missing').lower()}")  # fmt: skip
    if later is None:
        return Row("source", connector, "down", newest_delay_ms, detail=f"no slot {slot_name}")
    if later.wal_status == "lost":
        return Row("source", connector, "down", newest_delay_ms,
                   detail=f"slot {slot_name} lost its WAL: re-snapshot needed")  # fmt: skip
    if not later.active:
        return Row("source", connector, "down", newest_delay_ms,
                   detail=f"slot {slot_name} inactive")  # fmt: skip
    pending = None if later.sent_lsn is None else max(0, later.wal_lsn - later.sent_lsn)
    caught_up = (
        earlier is not None and later.sent_lsn is not None and later.sent_lsn >= earlier.wal_lsn
    )
    moved = (
        earlier is not None
        and later.sent_lsn is not None
        and earlier.sent_lsn is not None
        and later.sent_lsn > earlier.sent_lsn
    )
    state: State = "ok" if caught_up else "busy" if moved else "stalled"
    detail = f"slot {slot_name} active"
    if newest_delay_ms is not None:
        detail += f"; newest record {format_ms(newest_delay_ms)} after its commit"
    return Row("source", connector, state, newest_delay_ms, pending, "bytes", detail)


def wal_row(slot_name: str, earlier: Slot | None, later: Slot | None, warn_bytes: int) -> Row:
    """The WAL a slot holds back: ok under `warn_bytes`; above it, busy while the slot's
    restart point advances, stalled while it does not."""
    if later is None:
        return Row("wal", slot_name, "down", detail="no such slot")
    retained = later.retained_bytes
    activity = "active" if later.active else "inactive"
    detail = f"{activity}, {later.wal_status or 'unknown'}; warn over {format_bytes(warn_bytes)}"
    if later.wal_status == "lost":
        return Row("wal", slot_name, "down", None, retained, "bytes", detail)
    if retained is None or retained <= warn_bytes:
        return Row("wal", slot_name, "ok", None, retained, "bytes", detail)
    moved = (
        earlier is not None
        and earlier.restart_lsn is not None
        and later.restart_lsn is not None
        and later.restart_lsn > earlier.restart_lsn
    )
    return Row("wal", slot_name, "busy" if moved else "stalled", None, retained, "bytes", detail)


# -- worker -> sink --------------------------------------------------------------------------


def sink_row(
    name: str,
    earlier: Mapping[str, Any] | None,
    later: Mapping[str, Any] | None,
    ready: Mapping[str, Any] | None,
) -> Row:
    """Worker -> sink for one worker, from two looks at its stage histograms (`/search/stats/`)
    and its readiness page: the time shown is the 95th percentile, over the records it wrote
    in between, from Kafka to the sink's acknowledgement; the state is the worker's own."""
    if later is None or ready is None:
        return Row("worker", name, "down", detail="unreachable")
    stages = later.get("stages_ms", {})
    before = (earlier or {}).get("stages_ms", {})
    acked_now, fetched_now = stages.get("acked"), stages.get("fetched")
    lag_ms: float | None = None
    detail = "no records written in between"
    if acked_now and fetched_now:
        acked = since(acked_now, before.get("acked"))
        written = sum(acked)
        if written:
            lag_ms = quantile(acked, 0.95)
            in_sink = acked_now["sum_ms"] - (before.get("acked") or {}).get("sum_ms", 0.0)
            in_worker = fetched_now["sum_ms"] - (before.get("fetched") or {}).get("sum_ms", 0.0)
            sink_mean = (in_sink - in_worker) / written
            detail = f"{written} written, Kafka->sink p95, lane->sink mean {sink_mean:.0f} ms"
    state: State = ready.get("state") or ("ok" if ready.get("ready") else "stalled")
    failing = [n for n, c in (ready.get("checks") or {}).items() if not c.get("ok")]
    if failing:
        detail += "; not ready: " + ", ".join(
            f"{n} ({ready['checks'][n].get('reason', '')})" for n in failing
        )
    return Row("worker", name, state, lag_ms, detail=detail)


# -- a worker's own view, for its readiness page ---------------------------------------------

# Checks a worker fails while it starts or rebalances: busy, not stalled.
STARTING = frozenset({"rebalancing", "indexes"})


@dataclass(frozen=True)
class WorkerLag:
    state: State
    behind: int  # records between the committed offsets and the high watermarks
    lag_ms: float  # age of the oldest record handed to the agents and not yet acknowledged
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressTracker:
    """A worker's committed offsets over time, to tell busy from stalled on its own.

    `observe` is called on a timer with each assigned partition's (committed, high watermark);
    `lag` compares the newest look with the newest one at least `window_s` older. Until such a
    look exists (just started, just rebalanced) a worker behind reads busy, not stalled.
    """

    def __init__(self, window_s: float, ok_lag_ms: float) -> None:
        self.window_s, self.ok_lag_ms = window_s, ok_lag_ms
        self._looks: deque[tuple[float, dict[tuple[str, int], int | None]]] = deque()

    def observe(self, now_s: float, committed: Mapping[tuple[str, int], int | None]) -> None:
        self._looks.append((now_s, dict(committed)))
        # Keep the newest look older than the window, and everything after it.
        while len(self._looks) > 2 and self._looks[1][0] <= now_s - self.window_s:
            self._looks.popleft()

    def lag(
        self,
        now_s: float,
        positions: Mapping[tuple[str, int], tuple[int | None, int | None]],
        now_ms: float,
        oldest_waiting_ms: float | None,
    ) -> WorkerLag:
        """`positions`: (committed, high watermark) per assigned partition, now;
        `oldest_waiting_ms`: the Kafka timestamp of the oldest record handed on and not acked."""
        behind = sum(
            max(0, high - (committed or 0))
            for committed, high in positions.values()
            if high is not None and committed is not None
        )
        lag_ms = 0.0 if oldest_waiting_ms is None else max(0.0, now_ms - oldest_waiting_ms)
        if lag_ms <= self.ok_lag_ms:
            return WorkerLag("ok", behind, lag_ms, "")
        old = [look for t, look in self._looks if t <= now_s - self.window_s]
        if not old:
            return WorkerLag("busy", behind, lag_ms, "behind; too soon to tell if stalled")
        then = old[-1]
        moved = any(
            committed is not None and committed > (then.get(tp) or 0)
            for tp, (committed, _) in positions.items()
        )
        if moved:
            return WorkerLag("busy", behind, lag_ms, "behind, committing")
        reason = (
            f"stalled: oldest waiting record {format_ms(lag_ms)} old, "
            f"nothing committed in {self.window_s:g} s"
        )
        return WorkerLag("stalled", behind, lag_ms, reason)


def worker_state(lag: State, failing: Iterable[str]) -> State:
    """A worker's state from its lag and the names of its failing readiness checks: a check
    that fails while it starts or rebalances makes it busy, any other stalled."""
    failing = set(failing) - {"lag"}
    if lag in ("stalled", "down") or failing - STARTING:
        return "stalled"
    if lag == "busy" or failing:
        return "busy"
    return "ok"


# -- for people ------------------------------------------------------------------------------


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_behind(row: Row) -> str:
    if row.behind is None:
        return "-"
    return format_bytes(row.behind) if row.unit == "bytes" else f"{row.behind} {row.unit}"


def table_rows(rows: Iterable[Row]) -> list[tuple[str, str, str, str, str, str]]:
    """(stage, name, state, lag, behind, detail) for each row, as people read them."""
    return [
        (r.stage, r.name, r.state, format_ms(r.lag_ms), format_behind(r), r.detail) for r in rows
    ]


# The exit status of `headwater status`: 0 when nothing is stalled or down.
EXIT_CODES: dict[State, int] = {"ok": 0, "busy": 0, "stalled": 2, "down": 3}


def exit_code(rows: Iterable[Row]) -> int:
    return EXIT_CODES[worst(r.state for r in rows)]
