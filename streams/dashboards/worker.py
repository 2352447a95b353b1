"""A dashboards-only Faust worker: the same agents and tables on an app of their own.

The main job runs the dashboards inside the shared app (`streams.app`); this entry point runs
them alone, under their own app id, so the benchmark and the tests can start, kill and restart
a worker against their own topics without touching the main job's.

    python -m streams.dashboards.worker
"""

from __future__ import annotations

import sys

from headwater.settings import KafkaSettings, StackSettings
from streams.dashboards.agents import register
from streams.dashboards.settings import DashboardSettings
from streams.settings import StreamsSettings
from streams.transport import App


def create_app(kafka: KafkaSettings, ds: DashboardSettings) -> App:
    brokers = ";".join(kafka.bootstrap_servers.split(","))
    # Per app id: a table's local store records changelog offsets of this app's topics only.
    data_dir = (ds.data_dir or StackSettings().data_dir / "dashboards") / ds.app_id
    data_dir.mkdir(parents=True, exist_ok=True)
    app = App(
        ds.app_id,
        **StreamsSettings().consumer_options(),
        broker=f"kafka://{brokers}",
        store="rocksdb://",
        datadir=str(data_dir),
        topic_partitions=ds.source_partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_linger=0.0,
        # A new table has nothing to recover; don't wait before starting to.
        stream_recovery_delay=0.0,
    )
    register(app, kafka, ds)
    return app


def main() -> None:
    ds = DashboardSettings()
    app = create_app(KafkaSettings(), ds)
    # Faust binds its web port even with the web views off; give it one of our own.
    argv = ["worker", "--loglevel", "info", "--web-port", str(ds.web_port)]
    sys.argv = [sys.argv[0], *argv, *sys.argv[1:]]
    app.main()


if __name__ == "__main__":
    main()
