"""The Faust app of Headwater, assembled from settings and the declared pipelines.

`build_app(...)` is the one place a worker is put together: it makes the app and registers
each capability on it (the dashboards, and the search agent over every change topic the declared
indexes read), and the redrive agent that hands dead letters back to the consumer that failed
on them (`streams.deadletters`). Nothing is wired at import time. Run it with `headwater worker`
(`streams.worker`). Offsets: Faust turns off Kafka's auto-commit and commits, every
`broker_commit_interval`, the highest offset of each partition below which every message has
been acked (a gap stops it), so a capability decides when a record counts as done by when it
acks it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import faust
from faust.types.auth import CredentialsArg

from headwater.settings import KafkaSettings, Settings
from indexers.declared import DeclaredIndex
from streams.common import DeadLetterSender
from streams.dashboards.agents import register as register_dashboards
from streams.dashboards.settings import DashboardSettings
from streams.deadletters.agents import register as register_redrive
from streams.search.agents import register as register_search
from streams.settings import StreamsSettings
from streams.transport import App


def broker_credentials(kafka: KafkaSettings) -> CredentialsArg | None:
    """Faust's `broker_credentials` for the cluster: SASL (over TLS for SASL_SSL), TLS alone
    for SSL, none for PLAINTEXT. The TLS context is the one aiokafka's own clients get."""
    ssl_context = kafka.aiokafka_options().get("ssl_context")
    if kafka.uses_sasl:
        return faust.SASLCredentials(
            username=kafka.username,
            password=kafka.password.get_secret_value() if kafka.password else None,
            ssl_context=ssl_context,
            mechanism=kafka.sasl_mechanism,
        )
    return ssl_context


def create_app(settings: Settings, streams: StreamsSettings) -> App:
    # Per app id: a table's local store records changelog offsets, which mean nothing to an app
    # with other topics (Faust refuses to start on such a store).
    base = streams.data_dir or settings.stack.data_dir / "streams"
    datadir = base / streams.app_id / f"worker-{streams.worker_index}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return App(
        streams.app_id,
        **streams.consumer_options(),
        broker=[f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings.kafka),
        # rocksdict backs the store when python-rocksdb is absent.
        store="rocksdb://",
        datadir=str(datadir),
        web_host=streams.web_host,
        web_bind=streams.web_host,
        web_port=streams.worker_port(),
        autodiscover=False,
        origin="streams",
        topic_partitions=streams.topic_partitions,
        consumer_auto_offset_reset=streams.auto_offset_reset,
        # A batch waits for Elasticsearch; keep Faust from calling a slow batch a hung worker.
        stream_processing_timeout=120.0,
    )


def build_app(
    settings: Settings,
    streams: StreamsSettings,
    dashboards: DashboardSettings,
    indexes: dict[str, DeclaredIndex],
) -> App:
    """The worker's app: the dashboards and the declared indexes, each consumer taking the dead
    letters redriven to it, with a readiness page."""
    app = create_app(settings, streams)
    dead_letters = DeadLetterSender(app, settings.kafka.dead_letter_topic)
    redrive = register_redrive(app, dead_letters, streams.topic_partitions)
    register_dashboards(app, settings.kafka, dashboards, redrive)
    search = register_search(app, settings.kafka, settings.elasticsearch, streams, indexes, redrive)
    checks: list[Callable[[], bool]] = [search.ready]

    @app.page("/ready/")
    async def ready(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Ready once not rebalancing (partitions assigned and consumed) and every check passes."""
        is_ready = not app.rebalancing and all(check() for check in checks)
        return view.json({"ready": is_ready, "pid": os.getpid()}, status=200 if is_ready else 503)

    return app
