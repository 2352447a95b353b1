"""Dead letters in Kafka, for the `dlq` commands: read every dead-letter topic and an app's
marks, write redrive requests, and follow the marks a redrive gets back.

The I/O half of `streams.deadletters.logic`: every read is a plain read of whole topics from
their beginning (no consumer group, nothing committed), so listing never disturbs anything.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaError, Message, Producer, TopicPartition

from headwater.resilience import DeadLetter
from headwater.settings import KafkaSettings
from streams.deadletters.logic import Mark, Progress, Request, mark_key, marks_topic, redrive_topic

log = logging.getLogger(__name__)


class NoWorker(RuntimeError):
    """The app has no redrive topic: no worker of it has run since dead letters could be
    redriven."""


def _consumer(kafka: KafkaSettings) -> KafkaConsumer:
    return KafkaConsumer(
        {
            **kafka.client_config(),
            # Never joins the group (partitions are assigned by hand) and never commits.
            "group.id": f"headwater-dlq-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _ends(consumer: KafkaConsumer, topics: Sequence[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) watermarks of every partition of `topics` that exist."""
    found = consumer.list_topics(timeout=10).topics
    out = {}
    for topic in topics:
        if topic not in found:
            continue
        for partition in found[topic].partitions:
            out[(topic, partition)] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
    return out


def _position(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record read (never None for one without an error)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def _read(
    consumer: KafkaConsumer, start: dict[tuple[str, int], int], end: dict[tuple[str, int], int]
) -> Iterator[Message]:
    """Every record from `start` up to (not including) `end`, per partition."""
    left = {tp: end[tp] for tp, offset in start.items() if end[tp] > offset}
    if not left:
        return
    consumer.assign([TopicPartition(t, p, start[(t, p)]) for t, p in left])
    deadline = time.monotonic() + 60
    while left:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {sorted(left)} took over 60 s")
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            raise RuntimeError(str(error))
        topic, partition, offset = _position(message)
        yield message
        if (topic, partition) in left and offset >= left[(topic, partition)] - 1:
            del left[(topic, partition)]


def dead_letter_topics(kafka: KafkaSettings) -> list[str]:
    consumer = _consumer(kafka)
    try:
        names = consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()
    return sorted(n for n in names if n.endswith(kafka.dead_letter_suffix))


def read_letters(kafka: KafkaSettings) -> tuple[list[DeadLetter], int]:
    """Every letter of every dead-letter topic, and how many records were not letters."""
    topics = dead_letter_topics(kafka)
    consumer = _consumer(kafka)
    letters, unreadable = [], 0
    try:
        ends = _ends(consumer, topics)
        low = {tp: lo for tp, (lo, _) in ends.items()}
        for message in _read(consumer, low, {tp: hi for tp, (_, hi) in ends.items()}):
            try:
                letters.append(DeadLetter.from_json(message.value() or b""))
            except ValueError:
                unreadable += 1
    finally:
        consumer.close()
    return letters, unreadable


def _mark_of(message: Message) -> tuple[str, Mark] | None:
    """A record of the marks' changelog (Faust writes key and value as JSON)."""
    key, value = message.key(), message.value()
    if key is None or value is None:
        return None
    try:
        return str(json.loads(key)), Mark.from_json(json.loads(value))
    except (ValueError, KeyError, TypeError):
        return None


def read_marks(kafka: KafkaSettings, app_id: str) -> dict[str, Mark]:
    """The newest mark of every letter redriven in app `app_id`."""
    consumer = _consumer(kafka)
    marks: dict[str, Mark] = {}
    try:
        ends = _ends(consumer, [marks_topic(app_id)])
        low = {tp: lo for tp, (lo, _) in ends.items()}
        for message in _read(consumer, low, {tp: hi for tp, (_, hi) in ends.items()}):
            mark = _mark_of(message)
            if mark is not None:
                marks[mark[0]] = mark[1]
    finally:
        consumer.close()
    return marks


class Redriver:
    """One redrive: the requests written to the app's redrive topic, then the marks followed."""

    def __init__(self, kafka: KafkaSettings, app_id: str) -> None:
        self.kafka, self.app_id = kafka, app_id
        self.request = uuid.uuid4().hex[:12]
        self._consumer = _consumer(kafka)
        self._from: dict[tuple[str, int], int] = {}

    def send(self, letters: Sequence[DeadLetter]) -> Progress:
        """Ask the app's workers to redrive `letters`, each to its consumer."""
        topic = redrive_topic(self.app_id)
        found = self._consumer.list_topics(timeout=10).topics
        if topic not in found:
            raise NoWorker(
                f"no redrive topic {topic}: start a worker of app {self.app_id} (it declares it)"
            )
        partitions = len(found[topic].partitions)
        # Where the marks' changelog ends now: the answers to this request come after.
        ends = _ends(self._consumer, [marks_topic(self.app_id)])
        self._from = {tp: hi for tp, (_, hi) in ends.items()}
        producer = Producer(self.kafka.client_config())
        for letter in letters:
            producer.produce(
                topic,
                key=mark_key(letter).encode(),
                value=Request(letter, self.request).to_json(),
                partition=letter.partition % partitions,
            )
        if producer.flush(30) > 0:
            raise RuntimeError(f"the redrive requests were not all written to {topic}")
        return Progress.of(letters, self.request)

    def follow(
        self, progress: Progress, timeout_s: float, on_mark: Callable[[str, Mark], Any]
    ) -> None:
        """Read the marks written since `send` until every letter asked for has one, or
        `timeout_s` passed; `on_mark` is called for each answer as it arrives."""
        topic = marks_topic(self.app_id)
        deadline = time.monotonic() + timeout_s
        while not progress.done and time.monotonic() < deadline:
            ends = _ends(self._consumer, [topic])
            if not ends:  # the table's changelog appears with the first mark
                time.sleep(0.5)
                continue
            start = {tp: self._from.get(tp, lo) for tp, (lo, _) in ends.items()}
            end = {tp: hi for tp, (_, hi) in ends.items()}
            for message in _read(self._consumer, start, end):
                topic_, partition, offset = _position(message)
                self._from[(topic_, partition)] = offset + 1
                mark = _mark_of(message)
                if mark is not None and progress.note(*mark):
                    on_mark(*mark)
            if not progress.done:
                time.sleep(0.3)

    def close(self) -> None:
        self._consumer.close()
