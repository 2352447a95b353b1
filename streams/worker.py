"""Running stream workers: one Faust worker per process, in the foreground, logging to stderr.

    python -m streams.worker [INDEX]

Worker INDEX (default 0) serves its web endpoints on `HW_STREAMS_WEB_PORT + INDEX`; all
workers share the consumer group, so Kafka spreads the partitions over them. This is the
worker's entry point: settings are built here, once, with the declared pipelines, and handed
to `streams.app.build_app`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from types import FrameType

import faust
import mode.loop

from connectors.sources import resolve
from headwater.settings import Settings
from indexers.declared import declared_indexes
from streams.app import build_app
from streams.dashboards.settings import DashboardSettings
from streams.offsets import pin_start
from streams.settings import StreamsSettings
from streams.transport import App


def assemble(streams: StreamsSettings) -> tuple[App, Settings]:
    """Settings from the environment, the declared pipelines, and the app built from them."""
    settings = Settings.load()
    pipelines, bindings = resolve(settings)
    indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    return build_app(settings, streams, DashboardSettings(), indexes), settings


def run(index: int = 0, loglevel: str = "INFO") -> None:
    """Run worker `index` in this process until it is stopped (SIGINT or SIGTERM)."""
    streams = StreamsSettings(worker_index=index)
    if streams.event_loop == "uvloop":
        mode.loop.use("uvloop")  # before anything makes a loop
    app, settings = assemble(streams)

    class Worker(faust.Worker):
        async def on_first_start(self) -> None:
            await super().on_first_start()  # logging is set up; the app has not joined yet
            # The Elasticsearch client logs every request at INFO: dozens a second under load.
            logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
            if streams.auto_offset_reset == "latest":
                # Internal topics first: one made after the pinning would start at its end,
                # past records re-keyed into it before this consumer's first fetch.
                await app.declare_internal()
                topics, internal = app.consumed_topics()
                await asyncio.to_thread(pin_start, settings.kafka, app.conf.id, topics, internal)

    Worker(app, loglevel=loglevel).execute_from_commandline()


def run_many(count: int, loglevel: str = "INFO") -> int:
    """Run `count` workers as child processes; stop them all when told to or when one dies."""
    children = [
        subprocess.Popen([sys.executable, "-m", "streams.worker", str(i), loglevel])
        for i in range(count)
    ]

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    forward(signal.SIGTERM, None)
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return max((child.returncode or 0) for child in children)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    run(int(args[0]) if args else 0, args[1] if len(args) > 1 else "INFO")


if __name__ == "__main__":
    main()
