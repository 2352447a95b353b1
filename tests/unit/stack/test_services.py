"""Service descriptions, state evaluation and the version parsing behind `status`."""

from __future__ import annotations

import pytest

from headwater.settings import (
    ConnectSettings,
    ElasticsearchSettings,
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
)
from headwater.stack import services
from headwater.stack.services import Probe, ServiceStatus, State


@pytest.mark.parametrize(
    ("running", "ok", "state"),
    [
        (True, True, State.HEALTHY),
        (True, False, State.UNHEALTHY),
        (False, False, State.STOPPED),
        (False, True, State.EXTERNAL),
    ],
)
def test_evaluate(running: bool, ok: bool, state: State) -> None:
    assert services.evaluate(running, Probe(ok)) is state


def _status(state: State) -> ServiceStatus:
    return ServiceStatus("kafka", state, None, 9092, None, None)


def test_all_serving_needs_every_service_answering() -> None:
    assert services.all_serving([_status(State.HEALTHY), _status(State.EXTERNAL)])
    assert not services.all_serving([_status(State.HEALTHY), _status(State.UNHEALTHY)])
    assert not services.all_serving([_status(State.STOPPED)])
    assert not services.all_serving([])


def test_services_in_start_order_with_ports_from_settings() -> None:
    settings = Settings(
        postgres=PostgresSettings(password="x", port=6543),
        kafka=KafkaSettings(),
        connect=ConnectSettings(),
        elasticsearch=ElasticsearchSettings(),
        stack=StackSettings(),
    )
    described = services.services_of(settings)
    assert list(described) == ["postgres", "kafka", "connect", "elasticsearch"]
    assert described["postgres"].port == 6543
    assert described["kafka"].ports == (9092, 9093)
    assert described["connect"].port == 8083
    assert described["elasticsearch"].port == 9200
    assert described["postgres"].unprivileged and described["elasticsearch"].unprivileged
    assert not described["kafka"].unprivileged


def test_es_health() -> None:
    assert services.es_health_ok({"status": "yellow"})
    assert services.es_health_ok({"status": "green"})
    assert not services.es_health_ok({"status": "red"})
    assert not services.es_health_ok({})


def test_versions() -> None:
    plugins = [
        {"class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "version": "4.3.1"},
        {"class": "io.debezium.connector.postgresql.PostgresConnector", "version": "3.7.0.Final"},
    ]
    debezium = "io.debezium.connector.postgresql.PostgresConnector"
    assert services.connect_plugin_version(plugins, debezium) == "3.7.0.Final"
    assert services.connect_plugin_version(plugins, "nope") is None
    jars = ["kafka_2.13-4.3.1.jar", "kafka-clients-4.3.1.jar", "zstd-jni-1.5.6-10.jar"]
    assert services.kafka_version_from_jars(jars) == "4.3.1"
    assert services.es_node_version({"nodes": {"abc": {"version": "9.5.0"}}}) == "9.5.0"
    assert services.es_node_version({}) is None


def test_status_as_dict_is_json_ready() -> None:
    data = _status(State.HEALTHY).as_dict()
    assert data["state"] == "healthy" and type(data["state"]) is str
