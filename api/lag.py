"""The pipeline's lag per stage as Prometheus gauges, read when `/metrics` is scraped: the rows
`headwater status` shows (`streams.status`), from one look at the pipeline per scrape compared
with the look of the scrape before. A look is kept `max_age_s`, so scrapes close together (or
several Prometheus servers) cost one look; the first scrape has no earlier look to compare
with, so its rows carry lag and backlog but no state.

Per process: in multiprocess mode the process answering the scrape looks; lag is not summed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric

from headwater.settings import Settings
from streams.settings import StreamsSettings
from streams.status import probe
from streams.status.logic import STATES, Row

log = logging.getLogger(__name__)

L = TypeVar("L")


def families(rows: Sequence[Row], with_state: bool, age_s: float, up: bool) -> list[Metric]:
    """The gauges of `rows` (with each row's state, when `with_state`)."""
    lag = GaugeMetricFamily(
        "headwater_pipeline_lag_seconds",
        "How far behind a stage is, in time (as `headwater status` shows it).",
        labels=["stage", "name"],
    )
    behind = GaugeMetricFamily(
        "headwater_pipeline_behind",
        "What a stage has yet to process: records (Kafka -> worker) or WAL bytes.",
        labels=["stage", "name", "unit"],
    )
    state = GaugeMetricFamily(
        "headwater_pipeline_state",
        "1 for the stage's state (ok, busy, stalled, down), 0 for the others.",
        labels=["stage", "name", "state"],
    )
    for row in rows:
        if row.lag_ms is not None:
            lag.add_metric([row.stage, row.name], row.lag_ms / 1000)
        if row.behind is not None:
            behind.add_metric([row.stage, row.name, row.unit], row.behind)
        if with_state:
            for s in STATES:
                state.add_metric([row.stage, row.name, s], 1.0 if row.state == s else 0.0)
    age = GaugeMetricFamily(
        "headwater_pipeline_sample_age_seconds", "Age of the look these gauges come from.", age_s
    )
    ok = GaugeMetricFamily(
        "headwater_pipeline_sample_up", "1 if the last look at the pipeline could be taken.", up
    )
    return [lag, behind, *([state] if with_state else []), age, ok]


class PipelineLag(Generic[L]):
    """A Prometheus collector of the pipeline's lag: `look()` takes a look, `rows(earlier,
    later)` compares two."""

    def __init__(
        self,
        look: Callable[[], L],
        rows: Callable[[L, L], list[Row]],
        max_age_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._look, self._rows, self.max_age_s, self._clock = look, rows, max_age_s, clock
        self._lock = threading.Lock()
        self._previous: tuple[float, L] | None = None
        self._cached: tuple[float, list[Row], bool] | None = None
        self._up = False

    def sample(self) -> tuple[list[Row], bool, float]:
        """The rows (taking a look if the last is older than `max_age_s`), whether they carry
        states, and the look's age."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self.max_age_s:
                try:
                    later = self._look()
                except Exception as exc:
                    log.warning("pipeline lag: no look: %s", type(exc).__name__)
                    self._up = False
                    self._cached = (now, [], False)
                else:
                    earlier = self._previous[1] if self._previous else None
                    rows = self._rows(later if earlier is None else earlier, later)
                    self._previous, self._up = (now, later), True
                    self._cached = (now, rows, earlier is not None)
            at, rows, with_state = self._cached
            return rows, with_state, now - at

    def collect(self) -> Iterator[Metric]:
        rows, with_state, age = self.sample()
        yield from families(rows, with_state, age, self._up)

    def describe(self) -> Iterator[Metric]:
        # Nothing up front: registering must not take a look.
        return iter(())


def pipeline_lag(
    settings: Settings, streams: StreamsSettings, workers: int, max_age_s: float = 10.0
) -> PipelineLag[probe.Look]:
    """The collector of the running pipeline (its connectors' files read at the first look)."""
    found: list[list[probe.Source]] = []

    def srcs() -> list[probe.Source]:
        if not found:
            found.append(probe.sources(settings))
        return found[0]

    def look() -> probe.Look:
        return probe.look(settings, streams, srcs(), workers)

    def rows(earlier: probe.Look, later: probe.Look) -> list[Row]:
        return probe.rows(earlier, later, srcs(), streams.app_id, settings.status)

    return PipelineLag(look, rows, max_age_s)
