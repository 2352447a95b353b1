"""A new consumer group's start is committed before its worker joins (streams.offsets), on Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from headwater.settings import KafkaSettings, Settings
from streams.offsets import pin_start

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(stack: Settings, unique_name: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    admin = AdminClient(stack.kafka.client_config())
    source, internal = unique_name("hw-test-source"), unique_name("hw-test-internal")
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in (source, internal)]).values():
        future.result(timeout=30)
    producer = Producer(stack.kafka.client_config())
    for i in range(10):
        for topic in (source, internal):
            producer.produce(topic, key=str(i).encode(), value=b"x", partition=i % 2)
    assert producer.flush(30) == 0
    yield source, internal
    for future in admin.delete_topics([source, internal]).values():
        future.result(timeout=30)


def committed(kafka: KafkaSettings, group: str, topic: str) -> list[int]:
    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def test_a_new_group_starts_at_the_end_of_sources_and_the_start_of_its_own_topics(
    stack: Settings, topics: tuple[str, str], unique_name: Callable[[str], str]
) -> None:
    source, internal = topics
    kafka, group = stack.kafka, unique_name("hw-test-group")
    pinned = pin_start(kafka, group, [source, internal, "hw-test-no-such-topic"], [internal])
    assert pinned == {(source, 0): 5, (source, 1): 5, (internal, 0): 0, (internal, 1): 0}
    assert committed(kafka, group, source) == [5, 5]
    assert committed(kafka, group, internal) == [0, 0]


def test_offsets_a_group_already_has_are_left_alone(
    stack: Settings, topics: tuple[str, str], unique_name: Callable[[str], str]
) -> None:
    source, _ = topics
    kafka, group = stack.kafka, unique_name("hw-test-group")
    consumer = Consumer({**kafka.client_config(), "group.id": group})
    consumer.commit(offsets=[TopicPartition(source, 0, 2)], asynchronous=False)
    consumer.close()
    assert pin_start(kafka, group, [source]) == {(source, 1): 5}
    assert committed(kafka, group, source) == [2, 5]
