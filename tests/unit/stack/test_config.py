"""Rendering of the stack's configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from headwater.settings import (
    ConnectSettings,
    ElasticsearchSettings,
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
)
from headwater.stack import config
from headwater.stack.layout import StackLayout


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        postgres=PostgresSettings(password="s3cret-pw", port=5433),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:19092"),
        connect=ConnectSettings(url="http://127.0.0.1:18083"),
        elasticsearch=ElasticsearchSettings(url="http://127.0.0.1:19200"),
        stack=StackSettings(
            data_dir=tmp_path / "data",
            cache_dir=tmp_path / "cache",
            kafka_controller_port=19093,
            elasticsearch_heap="768m",
        ),
    )


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def test_host_port_reads_urls_and_plain_addresses() -> None:
    assert config.host_port("http://127.0.0.1:8083", 1) == ("127.0.0.1", 8083)
    assert config.host_port("127.0.0.1:9092", 1) == ("127.0.0.1", 9092)
    assert config.host_port("http://localhost", 9200) == ("localhost", 9200)


def test_kafka_is_a_combined_kraft_node_on_loopback(settings: Settings) -> None:
    layout = StackLayout.of(settings.stack)
    props = parse_properties(config.kafka_server_properties(settings, layout))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["num.partitions"] == "3"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(layout.kafka_log_dir)
    assert str(settings.stack.data_dir) in props["log.dirs"]


def test_connect_worker_uses_schemaless_json_and_the_debezium_plugin_path(
    settings: Settings,
) -> None:
    layout = StackLayout.of(settings.stack)
    props = parse_properties(config.connect_worker_properties(settings, layout))
    assert props["bootstrap.servers"] == "127.0.0.1:19092"
    assert props["group.id"] == "headwater-connect"
    assert props["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert props["key.converter.schemas.enable"] == "false"
    assert props["value.converter.schemas.enable"] == "false"
    assert props["listeners"] == "http://127.0.0.1:18083"
    assert props["plugin.path"] == str(layout.debezium_plugin_path)
    assert layout.debezium_plugin_dir.parent == layout.debezium_plugin_path
    for kind in ("config", "offset", "status"):
        assert props[f"{kind}.storage.replication.factor"] == "1"


def test_postgres_config_enables_logical_decoding_on_loopback(settings: Settings) -> None:
    layout = StackLayout.of(settings.stack)
    conf = config.postgres_conf(settings, layout)
    assert "wal_level = logical" in conf
    assert f"max_slot_wal_keep_size = '{settings.stack.postgres_max_slot_wal_keep_size}'" in conf
    assert "listen_addresses = '127.0.0.1'" in conf
    assert "port = 5433" in conf
    assert f"unix_socket_directories = '{layout.postgres_socket_dir}'" in conf
    hba = config.postgres_hba(settings)
    assert "host    replication  all   127.0.0.1/32   scram-sha-256" in hba
    assert "trust" not in hba
    # The password never appears in a rendered file.
    assert "s3cret-pw" not in conf + hba


def test_elasticsearch_is_single_node_on_loopback_with_the_configured_heap(
    settings: Settings,
) -> None:
    layout = StackLayout.of(settings.stack)
    yml = config.elasticsearch_yml(settings, layout)
    assert "discovery.type: single-node" in yml
    assert "http.host: 127.0.0.1" in yml
    assert "http.port: 19200" in yml
    assert f"path.data: {settings.stack.data_dir / 'elasticsearch' / 'data'}" in yml
    assert config.elasticsearch_jvm_options(settings) == "-Xms768m\n-Xmx768m\n"


def test_kafka_java_command_runs_from_the_libs_classpath() -> None:
    argv = config.kafka_java_command(
        Path("/jdk/bin/java"),
        "1g",
        "kafka.Kafka",
        Path("/d/server.properties"),
        Path("/d/log4j2.properties"),
    )
    assert argv[0] == "/jdk/bin/java"
    assert argv[1:3] == ["-Xms1g", "-Xmx1g"]
    assert argv[-4:] == ["-cp", "libs/*", "kafka.Kafka", "/d/server.properties"]


def test_kafka_cluster_ids_are_22_char_base64url_and_unique() -> None:
    ids = {config.new_kafka_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and "=" not in i and "+" not in i and "/" not in i for i in ids)


@pytest.fixture
def secure(tmp_path: Path) -> Settings:
    return Settings(
        postgres=PostgresSettings(password="s3cret-pw"),
        kafka=KafkaSettings(
            security_protocol="SASL_PLAINTEXT", username="headwater", password="kafka-s3cret"
        ),
        connect=ConnectSettings(),
        elasticsearch=ElasticsearchSettings(url="https://127.0.0.1:9200"),
        stack=StackSettings(data_dir=tmp_path / "data", secure=True),
    )


def test_secure_kafka_authenticates_every_listener_without_the_password_in_its_file(
    secure: Settings,
) -> None:
    text = config.kafka_server_properties(secure, StackLayout.of(secure.stack))
    props = parse_properties(text)
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["inter.broker.listener.name"] == "CLIENT"
    jaas = props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert 'password="${env:HW_KAFKA_PASSWORD}"' in jaas
    assert props["config.providers.env.param.allowlist.pattern"] == "^HW_KAFKA_PASSWORD$"
    assert "kafka-s3cret" not in text


def test_plain_kafka_keeps_the_listener_name_existing_data_was_formatted_with(
    settings: Settings,
) -> None:
    props = parse_properties(
        config.kafka_server_properties(settings, StackLayout.of(settings.stack))
    )
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert "sasl.enabled.mechanisms" not in props


def test_the_scram_user_is_made_from_an_argfile_and_a_bad_password_is_refused(
    secure: Settings,
) -> None:
    assert config.kafka_scram_args(secure) == (
        "--add-scram\nSCRAM-SHA-512=[name=headwater,password=kafka-s3cret]\n"
    )
    odd = secure.model_copy(
        update={"kafka": secure.kafka.model_copy(update={"password": SecretStr("a,b]")})}
    )
    with pytest.raises(ValueError, match="HW_KAFKA_PASSWORD"):
        config.kafka_scram_args(odd)


def test_connect_resolves_secrets_from_its_environment_and_authenticates_its_clients(
    secure: Settings, settings: Settings
) -> None:
    text = config.connect_worker_properties(secure, StackLayout.of(secure.stack))
    props = parse_properties(text)
    assert props["config.providers"] == "env,file"
    assert props["config.providers.env.param.allowlist.pattern"] == "^HW_.*"
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_PLAINTEXT"
        assert "${env:HW_KAFKA_PASSWORD}" in props[f"{prefix}sasl.jaas.config"]
    assert "kafka-s3cret" not in text
    plain = parse_properties(
        config.connect_worker_properties(settings, StackLayout.of(settings.stack))
    )
    assert plain["config.providers"] == "env,file"
    assert not any(key.endswith("sasl.jaas.config") for key in plain)


def test_secure_elasticsearch_serves_tls_from_the_generated_files(secure: Settings) -> None:
    text = config.elasticsearch_yml(secure, StackLayout.of(secure.stack))
    assert "xpack.security.enabled: true" in text
    assert "xpack.security.http.ssl.enabled: true" in text
    assert f"xpack.security.http.ssl.key: {config.ES_CERTS['key']}" in text
    assert "xpack.security.enabled: false" not in text
