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
import time
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
from streams.status.logic import ProgressTracker, WorkerLag, worker_state
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
    status = settings.status
    progress = ProgressTracker(status.stall_after_s, status.ok_lag_s * 1000)

    @app.timer(interval=min(status.sample_s, status.stall_after_s / 3))
    async def look_at_progress() -> None:
        progress.observe(time.monotonic(), {tp: c for tp, (c, _) in app.positions().items()})

    def lag() -> WorkerLag:
        return progress.lag(
            time.monotonic(), app.positions(), time.time() * 1000, app.oldest_waiting_ms()
        )

    # Named checks, each (ok, reason): the page is ready when all pass.
    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("rebalancing", lambda: (not app.rebalancing, "partitions being assigned")),
        ("indexes", lambda: (search.ready(), "indexes not made yet")),
        ("lag", lambda: ((now := lag()).state != "stalled", now.reason)),
        # Open after repeated failures: nothing is written (or committed) until it closes.
        ("elasticsearch", lambda: (search.breaker.state != "open", search.breaker_reason())),
    ]

    @app.page("/ready/")
    async def ready(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Ready when every check passes; `state` tells busy (behind, committing: still
        ready) from stalled (behind, nothing committed for stall_after_s: not ready)."""
        results = {name: check() for name, check in checks}
        failing = [name for name, (ok, _) in results.items() if not ok]
        now = lag()
        body = {
            "ready": not failing,
            "state": worker_state(now.state, failing),
            "pid": os.getpid(),
            "lag": now.as_dict(),
            "breakers": search.breakers(),
            "checks": {
                n: {"ok": ok, "reason": "" if ok else why} for n, (ok, why) in results.items()
            },
        }
        return view.json(body, status=503 if failing else 200)

    return app
