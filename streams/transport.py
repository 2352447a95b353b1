"""Faust's Kafka transport with a short fetch wait, for change-to-result latency.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and offers no setting for it.
aiokafka keeps one fetch in flight per broker, and that fetch leaves out the partitions whose
records are still being processed. On a one-broker stack, a change that lands on such a
partition waits for the in-flight fetch to come back, which on quiet topics is the whole
1.5 s: most of our one-second freshness budget. A wait of `fetch_max_wait_ms` (100 ms by
default) costs a few empty fetches per second and bounds that delay.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher.
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A `faust.App` whose worker consumer waits at most `fetch_max_wait_ms` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
