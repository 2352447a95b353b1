"""Verifying the dashboards on the real stack: read what they hold, recompute it from the source,
compare until the differences hold still (`verify`), and the counts `headwater chaos` adds up.

What the dashboards hold is what the workers published to their updates topic, read as the
API reads it (`views.DashboardState`): the whole compacted topic, then what arrives since.
Each round reads the topic up to its end first and the source second, so the dashboards can
only be behind what they are compared with; a difference that keeps moving is in flight, one
that holds still for `settle_s` is real (see `verify`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from headwater.models.updates import decode
from headwater.settings import KafkaSettings, Settings
from streams.dashboards import logic, truth
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.verify import (
    TOLERANCE,
    Report,
    Settling,
    aggregate,
    compare,
    dropped_by_stream,
    held,
    settle,
    window_label,
)
from streams.dashboards.views import DashboardState

# A window this close to the retention horizon may be half gone; it is not compared.
RETENTION_MARGIN_S = 120


class UpdatesReader:
    """The updates topic read from its beginning, without a consumer group, into a state."""

    def __init__(self, kafka: KafkaSettings, topic: str, retention_s: float) -> None:
        self.topic = topic
        self.state = DashboardState(retention_s=retention_s)
        self._consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": "headwater-verify-dashboards",  # required; nothing is committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        self._assigned = False

    def _assign(self) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise LookupError(f"no updates topic {self.topic!r}: has a worker published yet?")
        tps = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(metadata.partitions)]
        self._consumer.assign(tps)
        self._assigned = True
        return tps

    def catch_up(self, timeout_s: float = 120.0) -> DashboardState:
        """Read up to the end the topic has now; the state of every window so far."""
        if not self._assigned:
            self._assign()
        parts = self._consumer.assignment()
        ends = {
            tp.partition: self._consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts
        }
        deadline = time.monotonic() + timeout_s
        while True:
            positions = {tp.partition: tp.offset for tp in self._consumer.position(parts)}
            # A position below 0 is "not read yet": only done if the partition is empty.
            if all(positions[p] >= end or end == 0 for p, end in ends.items()):
                return self.state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic} was not read to its end in {timeout_s:g} s")
            for message in self._consumer.consume(5000, timeout=0.5):
                if message.error() is not None:
                    raise KafkaException(message.error())
                value = message.value()
                if value is not None:
                    self.state.apply(decode(value))

    def close(self) -> None:
        self._consumer.close()


def lower_bound(now_s: float, retention_s: float, since: float | None) -> int:
    """The first window start compared: what is still retained, and not before `since`."""
    retained = int(now_s - retention_s) + RETENTION_MARGIN_S
    return max(retained, int(-(-since // 1)) if since is not None else retained)


def _specs(windows: Collection[str] | None) -> list[logic.WindowSpec]:
    return [s for s in logic.WINDOWS if not windows or window_label(s) in windows]


def compare_once(
    reader: UpdatesReader,
    dsn: str,
    specs: list[logic.WindowSpec],
    lower_s: int,
    cells: Collection[tuple[str, str]] | None = None,
    tolerance: float = TOLERANCE,
) -> Report:
    """One round: the dashboards up to the end of their topic, then the source; only the
    (table, metric) `cells` if given."""
    state = reader.catch_up()
    ours = held(state, specs, lower_s)
    source = aggregate(truth.read_facts(dsn, lower_s), specs, lower_s)
    if cells is not None:
        ours = {k: v for k, v in ours.items() if k[:2] in cells}
        source = {k: v for k, v in source.items() if k[:2] in cells}
    dropped = dropped_by_stream(state)
    late = {m for stream, n in dropped.items() if n for m in truth.STREAM_METRICS.get(stream, ())}
    return Report(lower_s, compare(source, ours, tolerance, late), [], dropped)


def verify(
    settings: Settings,
    ds: DashboardSettings,
    since: float | None = None,
    windows: Collection[str] | None = None,
    cells: Collection[tuple[str, str]] | None = None,
    settle_s: float = 0.0,
    within_s: float | None = None,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Report:
    """Compare until every difference has held still for `settle_s` (0: one round, every
    difference counts) or `within_s` has passed (default three times `settle_s`).

    `since` (epoch seconds): compare only windows that begin at or after it, e.g. the start of
    a worker that began at the end of the topics. `windows` ("1m", "5m", "15m") and `cells`
    ((table, metric) pairs, e.g. a dashboard's) narrow what is compared."""
    specs = _specs(windows)
    lower_s = lower_bound(wall(), ds.retention_s, since)
    dsn = settings.postgres.dsn()
    reader = UpdatesReader(settings.kafka, ds.updates_topic, ds.retention_s)
    try:
        settling = Settling(settle_s)
        deadline: float | None = None
        while True:
            report = compare_once(reader, dsn, specs, lower_s, cells)
            now = clock()
            if deadline is None:  # from the first round's end: reading a big topic takes time
                deadline = now + (3 * settle_s if within_s is None else max(within_s, settle_s))
            settling.observe(now, report.differences)
            if not report.differences or settling.done(now) or now >= deadline:
                return settle(report, settling, now)
            time.sleep(poll_s)
    finally:
        reader.close()


def reconcile_dashboards(
    settings: Settings,
    updates_topic: str,
    since: datetime | float | None = None,
    settle_s: float = 0.0,
    metrics: Collection[str] | None = None,
    ds: DashboardSettings | None = None,
) -> dict[str, Any]:
    """Counts of one verification of the dashboards a worker publishes to `updates_topic`:
    equal, differs, missing, extra and in_flight (cells), and dropped (late events the worker
    reported, all streams). For `headwater chaos`: `since` is when its worker (started at the
    end of the topics) was ready."""
    base = ds or DashboardSettings()
    if isinstance(since, datetime):
        since = since.timestamp()
    cells = None
    if metrics is not None:
        cells = {(s.table, m) for s in logic.WINDOWS for m in s.metrics if m in metrics}
    report = verify(
        settings,
        base.model_copy(update={"updates_topic": updates_topic}),
        since=since,
        cells=cells,
        settle_s=settle_s,
    )
    # A few of the differences, so a failure says where it is (table, metric, window, member).
    samples = [
        f"{c.status} {'/'.join(str(k) for k in c.key)}: dashboard {c.dashboard}, source {c.source}"
        for c in report.differences[:3]
    ]
    return {**report.counts(), "dropped": sum(report.dropped.values()), "samples": samples}
