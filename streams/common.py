"""Shared by every stream capability: Kafka records as plain data, decoding, dead letters.

Decoding failures are data, not exceptions: `decode_records` splits a batch into changes,
tombstones and undecodable records, and a record that fails for a consumer becomes a
`DeadLetter` naming that consumer, for `settings.kafka.dead_letter_topic(topic)` (so a record
every consumer of its topic fails on is one letter per consumer). A record redriven from a dead
letter (`streams.deadletters`) carries that letter, and failing again it becomes the same
letter with one more attempt. `DeadLetterSender` is the one place that publishes them: it
stamps the app, logs each with `topic[partition]@offset`, its key and its consumer, and waits
for Kafka's acknowledgement, so an agent commits the source offset only once the letter is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.models.cdc import ChangeEvent, MalformedEvent, decode_change
from headwater.resilience import DeadLetter

if TYPE_CHECKING:
    import faust
    from faust.types import TopicT

log = logging.getLogger(__name__)

# Topic options for records kept as the bytes Kafka holds (change events, dead letters).
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


@dataclass(frozen=True)
class Record:
    """One Kafka record, detached from Faust so that logic can be tested without it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # The dead letter this record is redriven from, if it is.
    previous: DeadLetter | None = None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str:
        return "" if self.key is None else self.key.decode("utf-8", errors="backslashreplace")

    @classmethod
    def of_event(cls, event: Any) -> Record:
        """From a Faust event (its `message` has topic, partition, offset, key, value)."""
        message = event.message
        return cls(message.topic, message.partition, message.offset, message.key, message.value)

    @classmethod
    def of_letter(cls, letter: DeadLetter) -> Record:
        """The record a dead letter holds, to hand to its consumer again."""
        key = None if letter.key is None else letter.key.encode()
        value = None if letter.value is None else letter.value.encode()
        return cls(letter.source_topic, letter.partition, letter.offset, key, value, letter)

    def dead_letter(self, error: BaseException | str, stage: str, consumer: str) -> DeadLetter:
        """The letter for `consumer` failing on this record at `stage`."""
        if self.previous is not None and self.previous.consumer == consumer:
            return self.previous.again(error, stage)
        return DeadLetter.of(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            error=error,
            stage=stage,
            consumer=consumer,
        )


@dataclass
class Decoded:
    changes: list[tuple[Record, ChangeEvent]] = field(default_factory=list)
    tombstones: int = 0
    # Each fails for every consumer of its topic: one letter per consumer (`letters`).
    undecodable: list[tuple[Record, MalformedEvent]] = field(default_factory=list)

    def letters(self, consumers: Iterable[str]) -> list[DeadLetter]:
        names = list(consumers)
        return [r.dead_letter(exc, "decode", c) for r, exc in self.undecodable for c in names]


def decode_records(records: Iterable[Record]) -> Decoded:
    out = Decoded()
    for record in records:
        try:
            change = decode_change(record.key, record.value)
        except MalformedEvent as exc:
            out.undecodable.append((record, exc))
            continue
        if change is None:
            out.tombstones += 1
        else:
            out.changes.append((record, change))
    return out


def dead_letter_batches(
    letters: Sequence[DeadLetter], topic_for: Any
) -> dict[str, list[DeadLetter]]:
    """Dead letters grouped by the dead-letter topic `topic_for(source_topic)` names."""
    grouped: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        grouped.setdefault(topic_for(letter.source_topic), []).append(letter)
    return grouped


class DeadLetterSender:
    """Publishes dead letters on a Faust app, each to its source topic's dead-letter topic."""

    def __init__(self, app: faust.App, topic_for: Callable[[str], str]) -> None:
        self._app = app
        self._topic_for = topic_for
        self._topics: dict[str, TopicT] = {}

    async def _topic(self, name: str) -> TopicT:
        topic = self._topics.get(name)
        if topic is None:
            # Internal: declared by the worker, not left to broker auto-creation.
            topic = self._app.topic(name, internal=True, partitions=1, **RAW)
            await topic.maybe_declare()
            self._topics[name] = topic
        return topic

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Send every letter and return once Kafka has acknowledged all of them."""
        app_id = self._app.conf.id
        stamped = [
            letter if letter.app else letter.model_copy(update={"app": app_id})
            for letter in letters
        ]
        for name, batch in dead_letter_batches(stamped, self._topic_for).items():
            topic = await self._topic(name)
            pending = []
            for letter in batch:
                log.warning(
                    "dead letter (%s at %s, attempt %d) %s key=%s -> %s: %s",
                    letter.consumer,
                    letter.stage,
                    letter.attempts,
                    letter.where,
                    letter.key,
                    name,
                    letter.error,
                )
                pending.append(
                    await topic.send(key=(letter.key or "").encode(), value=letter.to_json())
                )
            for future in pending:
                await future
