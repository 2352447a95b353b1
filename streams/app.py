"""The one Faust app of Headwater, built from settings; each capability's agents register on it.

Run it with `headwater worker` (which starts `faust.Worker` on this app). Offsets: Faust turns
off Kafka's auto-commit and commits, every `broker_commit_interval`, the highest offset of each
partition below which every message has been acked (a gap stops it), so a capability decides
when a record counts as done by when it acks it.
"""

from __future__ import annotations

from collections.abc import Callable

import faust

from headwater.settings import ElasticsearchSettings, KafkaSettings
from streams.settings import StreamsSettings
from streams.transport import App

kafka_settings = KafkaSettings()
es_settings = ElasticsearchSettings()
streams_settings = StreamsSettings()


def create_app(kafka: KafkaSettings, streams: StreamsSettings) -> App:
    # Per app id: a table's local store records changelog offsets, which mean nothing to an app
    # with other topics (Faust refuses to start on such a store).
    datadir = streams.data_dir / streams.app_id / f"worker-{streams.worker_index}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return App(
        streams.app_id,
        **streams.consumer_options(),
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        # rocksdict backs the store when python-rocksdb is absent.
        store="rocksdb://",
        datadir=str(datadir),
        web_host=streams.web_host,
        web_bind=streams.web_host,
        web_port=streams.worker_port(),
        autodiscover=False,
        origin="streams",
        # Debezium's change topics have 3 partitions; internal topics match them.
        topic_partitions=3,
        consumer_auto_offset_reset=streams.auto_offset_reset,
        # A batch waits for Elasticsearch; keep Faust from calling a slow batch a hung worker.
        stream_processing_timeout=120.0,
    )


app = create_app(kafka_settings, streams_settings)
# Capabilities add a check here when they need more than a running consumer to be ready.
readiness: list[Callable[[], bool]] = []


@app.page("/ready/")
async def ready(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
    """Ready once not rebalancing (partitions assigned and consumed) and every check passes."""
    is_ready = not app.rebalancing and all(check() for check in readiness)
    return view.json({"ready": is_ready}, status=200 if is_ready else 503)


# Agent modules register on `app` when imported.
import streams.dashboards.main  # noqa: E402
import streams.search.agents  # noqa: E402, F401
