"""Where a new consumer group starts, made durable before the first record is processed.

Faust commits a partition's offset only once one of its records has been acked. With
`auto_offset_reset=latest`, a worker that dies before that first commit comes back with no
committed offset and starts again at the *new* end of the topic, silently skipping whatever
arrived while it was down. `pin_start` closes that gap: before the worker joins its group,
every subscribed partition that has no committed offset gets one, at the end of a source topic
("from now on") or at the beginning of the app's own internal topics (which only this app
writes, so all of it is ours to process). Partitions that already have an offset are never
touched.

`start_positions` is the pure decision; `pin_start` reads Kafka and commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from headwater.settings import KafkaSettings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int
    committed: int | None  # None: the group has no offset for it
    low: int
    high: int


def start_positions(
    partitions: Iterable[Partition], internal: set[str]
) -> dict[tuple[str, int], int]:
    """The offset to commit for each partition that has none: end of a source, start of internal."""
    return {
        (p.topic, p.partition): p.low if p.topic in internal else p.high
        for p in partitions
        if p.committed is None
    }


def _partitions(consumer: Consumer, topics: Iterable[str]) -> list[Partition]:
    metadata = consumer.list_topics(timeout=TIMEOUT_S).topics
    tps = [
        TopicPartition(topic, partition)
        for topic in sorted(set(topics))
        if topic in metadata and metadata[topic].error is None
        for partition in sorted(metadata[topic].partitions)
    ]
    if not tps:
        return []
    committed = consumer.committed(tps, timeout=TIMEOUT_S)
    out = []
    for tp in committed:
        low, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)
        offset = tp.offset if tp.offset >= 0 else None
        out.append(Partition(tp.topic, tp.partition, offset, low, high))
    return out


def pin_start(
    kafka: KafkaSettings, group: str, topics: Iterable[str], internal: Iterable[str] = ()
) -> Mapping[tuple[str, int], int]:
    """Commit a start offset for every partition of `topics` the group has none for.

    Topics that do not exist yet are left out (the worker creates internal ones; a source
    topic that appears later starts at its beginning under either reset policy only if it is
    empty then). Returns what was committed. Refused by Kafka while the group has live members,
    which is logged and skipped: those members commit as they go.
    """
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        positions = start_positions(_partitions(consumer, topics), set(internal))
        if positions:
            offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(positions.items())]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.info("start offsets of group %s not pinned: %s", group, exc)
                return {}
            log.info(
                "group %s starts at: %s",
                group,
                ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(positions.items())),
            )
        return positions
    finally:
        consumer.close()
