"""The workers' Kafka credentials: Faust hands aiokafka what every other aiokafka client gets."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import to_credentials
from pydantic import SecretStr

from headwater.settings import KafkaSettings
from streams.app import broker_credentials


def _comparable(options: dict[str, Any]) -> dict[str, Any]:
    """Without the servers (Faust takes those from `broker`) and unset values; a TLS context
    as its type (each call makes a new one)."""
    return {
        key: "SSLContext" if isinstance(value, ssl.SSLContext) else value
        for key, value in options.items()
        if key != "bootstrap_servers" and value is not None
    }


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"])
def test_faust_authenticates_as_the_other_aiokafka_clients(protocol: str) -> None:
    kafka = KafkaSettings(
        security_protocol=protocol,
        sasl_mechanism="SCRAM-SHA-512",
        username="svc-headwater",
        password=SecretStr("kafka-secret"),
        ssl_ca=None,
    )
    faust_auth = credentials_to_aiokafka_auth(to_credentials(broker_credentials(kafka)))
    assert _comparable(dict(faust_auth)) == _comparable(kafka.aiokafka_options())


def test_a_plain_cluster_gets_no_credentials() -> None:
    assert broker_credentials(KafkaSettings(security_protocol="PLAINTEXT")) is None


def test_worker_state_lives_with_the_stack_it_mirrors(tmp_path: Any) -> None:
    """Local table state records changelog offsets of one Kafka: the plain and the secured
    stack (each its own data directory) must not share it."""
    from headwater.settings import (
        ConnectSettings,
        ElasticsearchSettings,
        PostgresSettings,
        Settings,
        StackSettings,
    )
    from streams.app import create_app
    from streams.settings import StreamsSettings

    def settings(data_dir: Any) -> Settings:
        return Settings(
            postgres=PostgresSettings(password="x"),
            kafka=KafkaSettings(),
            connect=ConnectSettings(),
            elasticsearch=ElasticsearchSettings(),
            stack=StackSettings(data_dir=data_dir),
        )

    streams = StreamsSettings(app_id="state-test", data_dir=None)
    plain = create_app(settings(tmp_path / "plain"), streams)
    secure = create_app(settings(tmp_path / "plain-secure"), streams)
    assert str(plain.conf.datadir).startswith(str(tmp_path / "plain" / "streams"))
    assert str(secure.conf.datadir).startswith(str(tmp_path / "plain-secure" / "streams"))
    mine = StreamsSettings(app_id="state-test", data_dir=tmp_path / "mine")
    assert str(create_app(settings(tmp_path / "plain"), mine).conf.datadir).startswith(
        str(tmp_path / "mine")
    )
