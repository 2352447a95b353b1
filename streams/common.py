"""Shared by every stream capability: Kafka records as plain data, decoding, dead letters.

Decoding failures are data, not exceptions: `decode_records` splits a batch into changes,
tombstones and failures, and a failure becomes a `DeadLetter` for
`settings.kafka.dead_letter_topic(topic)`. `DeadLetterSender` is the one place that publishes
them: it logs each with `topic[partition]@offset` and its key, and waits for Kafka's
acknowledgement, so an agent commits the source offset only once the letter is safe.
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

    def dead_letter(self, error: BaseException | str, stage: str) -> DeadLetter:
        return DeadLetter.of(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            error=error,
            stage=stage,
        )


@dataclass
class Decoded:
    changes: list[tuple[Record, ChangeEvent]] = field(default_factory=list)
    tombstones: int = 0
    failures: list[DeadLetter] = field(default_factory=list)


def decode_records(records: Iterable[Record], stage: str = "decode") -> Decoded:
    out = Decoded()
    for record in records:
        try:
            change = decode_change(record.key, record.value)
        except MalformedEvent as exc:
            out.failures.append(record.dead_letter(exc, stage))
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
        for name, batch in dead_letter_batches(letters, self._topic_for).items():
            topic = await self._topic(name)
            pending = []
            for letter in batch:
                log.warning(
                    "dead letter (%s) %s key=%s -> %s: %s",
                    letter.stage,
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
