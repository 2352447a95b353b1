"""Purging replaced connector configs from Connect's configs topic.

When `apply` turns a secret that a connector config held in clear into a `${env:NAME}`
reference, the old config is still in Connect's configs topic: it is compacted, but Kafka
only compacts segments that are no longer written to, and with the defaults that can take a
week. `purged` makes it happen now: for the duration of the migration the topic rolls its
segment at every write and is compacted at once, the new config is written twice (so that it
sits in a closed segment too, where the cleaner sees that it replaces the old one), and the
topic is read back until no record holds the old values. Then the topic's settings are put
back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from headwater.settings import KafkaSettings

# Topic settings for the duration of a purge; removed afterwards (back to the broker's).
PURGE_OVERRIDES = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.0001",
    "min.compaction.lag.ms": "0",
    "file.delete.delay.ms": "0",
}


class PurgeError(RuntimeError):
    """The old values were still readable when the purge gave up."""


def _alter(admin: Any, topic: str, values: dict[str, str], operation: Any) -> None:
    from confluent_kafka.admin import ConfigEntry, ConfigResource, ResourceType

    entries = [
        ConfigEntry(name, value, incremental_operation=operation) for name, value in values.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


@contextmanager
def compacting_now(kafka: KafkaSettings, topic: str) -> Iterator[None]:
    """`topic` rolls and compacts eagerly inside the block; its own settings come back after."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType

    admin = AdminClient({**kafka.client_config()})
    _alter(admin, topic, PURGE_OVERRIDES, AlterConfigOpType.SET)
    try:
        yield
    finally:
        _alter(admin, topic, dict.fromkeys(PURGE_OVERRIDES, ""), AlterConfigOpType.DELETE)


def records_holding(kafka: KafkaSettings, topic: str, values: list[str]) -> int:
    """How many records of `topic`, read from its start to its end, contain any of `values`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": "headwater-purge-check",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    needles = [v.encode() for v in values if v]
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return 0
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found, done = 0, set[int]()
        deadline = time.monotonic() + 30
        while len(done) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error, partition = message.error(), message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    done.add(partition)
                continue
            value = message.value() or b""
            found += any(needle in value for needle in needles)
            if (message.offset() or 0) + 1 >= ends[partition]:
                done.add(partition)
        return found
    finally:
        consumer.close()


def purge(
    kafka: KafkaSettings,
    topic: str,
    old_values: list[str],
    write: Callable[[], object],
    timeout_s: float = 120.0,
    on_wait: Callable[[int], None] = lambda n: None,
) -> float:
    """Write the new config until no record of `topic` holds `old_values`; the seconds it took.

    Each write rolls the segment before it, so the records of the previous write sit in a
    closed segment, where the cleaner sees that they replace the old ones. Raises PurgeError
    when old values are still readable at the end.
    """
    started = time.monotonic()
    with compacting_now(kafka, topic):
        while True:
            time.sleep(0.3)  # the open segment is older than segment.ms: the next write rolls
            write()
            time.sleep(2.0)
            left = records_holding(kafka, topic, old_values)
            if left == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise PurgeError(
                    f"{left} record(s) of {topic} still hold a replaced secret after "
                    f"{timeout_s:.0f}s; Kafka's log cleaner will drop them later"
                )
            on_wait(left)
