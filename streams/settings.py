"""Settings of the stream workers: the Faust app, its web port, bulk batching and index names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from headwater.settings import _Component, _config


class StreamsSettings(_Component):
    """The Faust workers (env prefix HW_STREAMS_)."""

    model_config = _config("HW_STREAMS_")

    # The Faust app id is also the Kafka consumer group and the prefix of its internal topics.
    app_id: str = "headwater"
    web_host: str = "127.0.0.1"
    # Worker N (0-based) serves its web endpoints on web_port + N and keeps its local state in
    # data_dir/<app_id>/worker-N; `headwater worker --workers N` sets worker_index for each.
    web_port: int = 6180
    worker_index: int = 0
    # Unset: `streams/` in the stack's data directory, beside the Kafka whose changelogs the
    # state mirrors (the plain and the secured stack each have their own).
    data_dir: Path | None = None
    # The most change records one call of the search agent takes (what arrived while its last
    # bulk request was out, up to this). It also bounds how far reading runs ahead of writing.
    bulk_max_docs: int = Field(default=5000, ge=1)
    # The longest a Kafka fetch waits for data (Faust's own is 1500 ms): bounds how long a
    # change on a partition that was just read can wait for the next fetch (streams.transport).
    fetch_max_wait_ms: int = 100
    # Partitions of the app's internal topics: as many as the change topics have (Debezium's
    # `topic.creation.default.partitions` in the connector files).
    topic_partitions: int = Field(default=3, ge=1)
    # Where a new consumer group starts reading: the whole topic, so a fresh index is complete.
    # With "latest" the worker pins that start before it joins (streams.offsets), so a crash
    # before its first commit does not skip what arrived meanwhile.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # How long Kafka waits for a silent worker before giving its partitions to the others (and
    # before a restarted worker can rejoin): Faust's 60 s default would stall a killed worker's
    # partitions for a minute. Heartbeats go every third of it.
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    # How often a worker commits the offsets its agents are done with. A record read but not
    # yet committed is read again after a crash (at-least-once); the dashboards skip those.
    commit_interval_s: float = Field(default=1.0, gt=0.0)

    # The worker's event loop: uvloop (its selector, sockets and callbacks in C) or asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    def consumer_options(self) -> dict[str, Any]:
        """Keyword arguments of `streams.transport.App` for how its consumer talks to Kafka."""
        return {
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "broker_session_timeout": self.session_timeout_s,
            "broker_heartbeat_interval": self.session_timeout_s / 3,
            "broker_commit_interval": self.commit_interval_s,
        }

    def worker_port(self, index: int | None = None) -> int:
        return self.web_port + (self.worker_index if index is None else index)
