"""Purging secrets from Connect's configs topic once configs name them by reference.

A connector config that held a secret in clear leaves it in Connect's configs topic after the
config became a `${env:NAME}` reference: the topic is compacted, but Kafka compacts only
segments no longer written to, which with the defaults can take a week; and the task configs
of a connector deleted before the migration are never rewritten, so they keep the secret for
good. `purge` handles both:
- a record that is still the newest of its key and holds a secret (such a task config) is
  superseded by a redacted copy, the secret replaced by its reference;
- for the duration, the topic rolls its segment at every write and is compacted at once, and
  a config is written again until the cleaner has dropped every record holding a secret.
Then the topic's settings are put back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from headwater.settings import KafkaSettings

# Topic settings for the duration of a purge; removed afterwards (back to the broker's).
PURGE_OVERRIDES = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.0001",
    "min.compaction.lag.ms": "0",
    "file.delete.delay.ms": "0",
}
MASK = "**********"

_quiet = logging.getLogger("headwater.connectors.purge-read")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class PurgeError(RuntimeError):
    """Old values were still readable when the purge gave up."""


@dataclass(frozen=True)
class Holding:
    """What a read of the topic found: records holding a secret, and the newest of each key."""

    records: int
    newest: dict[bytes, bytes]  # key -> value, where the key's newest record holds a secret


def redacted(value: bytes, secrets: Mapping[str, str]) -> bytes:
    """A JSON record with every secret replaced by `${env:NAME}` (or a mask for `?` names)."""

    def clean(node: Any) -> Any:
        if isinstance(node, str):
            for name, secret in secrets.items():
                if secret and secret in node:
                    node = node.replace(
                        secret, MASK if name.startswith("?") else f"${{env:{name}}}"
                    )
            return node
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return json.dumps(clean(json.loads(value)), separators=(",", ":")).encode()


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


def holding(kafka: KafkaSettings, topic: str, secrets: Mapping[str, str]) -> Holding:
    """Read `topic` from its start to its end: the records that contain any of `secrets`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": "headwater-purge-check",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # Closing it right after the read cuts its group-coordinator connection short,
            # which librdkafka logs as an error; a failure that matters raises instead.
            "logger": _quiet,
        }
    )
    needles = [v.encode() for v in secrets.values() if v]
    newest: dict[bytes, bytes | None] = {}
    found = 0
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done = set[int]()
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
            value = message.value()
            secret = value is not None and any(needle in value for needle in needles)
            found += secret
            newest[message.key() or b""] = value if secret else None
            if (message.offset() or 0) + 1 >= ends[partition]:
                done.add(partition)
    finally:
        consumer.close()
    return Holding(found, {k: v for k, v in newest.items() if v is not None})


def _supersede(
    kafka: KafkaSettings, topic: str, records: dict[bytes, bytes], secrets: Mapping[str, str]
) -> None:
    from confluent_kafka import Producer

    producer = Producer({**kafka.client_config(), "acks": "all"})
    for key, value in records.items():
        producer.produce(topic, key=key, value=redacted(value, secrets))
    if producer.flush(30):
        raise PurgeError(f"could not write redacted copies to {topic}")


def purge(
    kafka: KafkaSettings,
    topic: str,
    secrets: Mapping[str, str],
    write: Callable[[], object],
    timeout_s: float = 120.0,
    on_wait: Callable[[int], None] = lambda n: None,
) -> float:
    """Drop every record of `topic` holding one of `secrets` (name -> value); the seconds it took.

    `write` makes Connect write a config (an idempotent PUT): each write rolls the segment
    before it, so what was written before sits in a closed segment, where the cleaner sees what
    it replaces. Raises PurgeError when old values are still readable at the end.
    """
    started = time.monotonic()
    with compacting_now(kafka, topic):
        newest = holding(kafka, topic, secrets).newest
        if newest:
            time.sleep(0.3)
            _supersede(kafka, topic, newest, secrets)
        while True:
            time.sleep(0.3)  # the open segment is older than segment.ms: the next write rolls
            write()
            time.sleep(2.0)
            left = holding(kafka, topic, secrets).records
            if left == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise PurgeError(
                    f"{left} record(s) of {topic} still hold a replaced secret after "
                    f"{timeout_s:.0f}s; Kafka's log cleaner will drop them later"
                )
            on_wait(left)
