"""A dashboards-only Faust worker: the same app as the main job's, without search indexes.

The main job runs the dashboards beside the search agents; this entry point assembles the same
app (`streams.app.build_app`) with no declared index, under the dashboards' own app id, so the
benchmark and the tests can start, kill and restart a worker against their own topics without
touching the main job's.

    python -m streams.dashboards.worker
"""

from __future__ import annotations

import sys

from headwater.settings import Settings
from streams.app import build_app
from streams.dashboards.settings import DashboardSettings
from streams.settings import StreamsSettings
from streams.transport import App


def assemble(settings: Settings, ds: DashboardSettings) -> App:
    streams = StreamsSettings(
        app_id=ds.app_id,
        data_dir=ds.data_dir or settings.stack.data_dir / "dashboards",
        web_port=ds.web_port,
        topic_partitions=ds.source_partitions,
        auto_offset_reset="earliest",
    )
    return build_app(settings, streams, ds, indexes={})


def main() -> None:
    app = assemble(Settings.load(), DashboardSettings())
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", *sys.argv[1:]]
    app.main()


if __name__ == "__main__":
    main()
