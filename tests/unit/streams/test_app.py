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
