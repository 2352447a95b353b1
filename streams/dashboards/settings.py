"""Settings of the dashboards capability: lateness, windows kept, batching and where updates go."""

from __future__ import annotations

from pathlib import Path

from headwater.settings import _Component, _config

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


class DashboardSettings(_Component):
    """How the dashboard aggregates are computed, published and served."""

    model_config = _config("HW_DASHBOARDS_")

    # Events whose time is older than (latest event time seen - allowed lateness) are counted
    # as dropped instead of being added to a window that has already been shown as complete.
    allowed_lateness_s: float = 120.0
    # How long a window stays in the tables (and can still be corrected by a retraction).
    retention_s: float = 3 * 3600.0
    # The compacted topic every worker publishes changed window values to; every API instance
    # reads all of it, so it can answer for any partition whichever worker owns it.
    updates_topic: str = "dashboards.updates"
    updates_partitions: int = 3
    # Partitions of the source change topics (Debezium's default for the shop is 3). The
    # tables are co-partitioned with them.
    source_partitions: int = 3
    # The Faust app id of a standalone dashboards worker (tests, benchmark); it prefixes the
    # changelog topics and the consumer group.
    app_id: str = "headwater-dashboards"
    # Where the standalone worker keeps its RocksDB state; None: under the data directory.
    data_dir: Path | None = None
    web_port: int = 6067
    definitions_dir: Path = DEFINITIONS_DIR
    # Server-Sent Events: a comment line this often keeps proxies from closing the stream;
    # `retry` tells the browser how soon to reconnect.
    heartbeat_s: float = 30.0
    reconnect_ms: int = 1000
    # How long the API waits, on its first request, to read the updates topic up to its end;
    # past it, a dashboard is a 503 (at once, until Kafka is reached again).
    catch_up_timeout_s: float = 20.0
