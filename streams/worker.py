"""Running stream workers: one Faust worker per process, in the foreground, logging to stderr.

    python -m streams.worker [INDEX]

Worker INDEX (default 0) serves its web endpoints on `HW_STREAMS_WEB_PORT + INDEX`; all
workers share the consumer group, so Kafka spreads the partitions over them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from types import FrameType


def run(index: int = 0, loglevel: str = "INFO") -> None:
    """Run worker `index` in this process until it is stopped (SIGINT or SIGTERM)."""
    # Read by StreamsSettings when streams.app builds the app, so it must be set first.
    os.environ["HW_STREAMS_WORKER_INDEX"] = str(index)
    import faust

    from streams.app import app, kafka_settings, streams_settings
    from streams.offsets import pin_start

    class Worker(faust.Worker):
        async def on_first_start(self) -> None:
            await super().on_first_start()  # logging is set up; the app has not joined yet
            if streams_settings.auto_offset_reset == "latest":
                topics, internal = app.consumed_topics()
                servers = kafka_settings.bootstrap_servers
                await asyncio.to_thread(pin_start, servers, app.conf.id, topics, internal)

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
