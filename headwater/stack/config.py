"""Rendering of every service's configuration files from settings; pure, no I/O."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from headwater.settings import Settings
from headwater.stack.layout import StackLayout

DEBEZIUM_POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
CONNECT_GROUP_ID = "headwater-connect"


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """'127.0.0.1:9092', 'http://127.0.0.1:8083' -> ('127.0.0.1', port)."""
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def properties(values: Mapping[str, object]) -> str:
    """A Java .properties file; values are simple tokens here, so no escaping is needed."""
    return "".join(f"{key}={value}\n" for key, value in values.items())


def new_kafka_cluster_id() -> str:
    """A KRaft cluster id as `kafka-storage random-uuid` makes: 16 bytes, base64url, no padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def heap_flags(heap: str) -> list[str]:
    return [f"-Xms{heap}", f"-Xmx{heap}"]


# PostgreSQL ----------------------------------------------------------------------------------
def postgres_conf(settings: Settings, layout: StackLayout) -> str:
    """Included from postgresql.conf; rewritten at every `up`."""
    pg = settings.postgres
    values = {
        "listen_addresses": f"'{pg.host}'",
        "port": pg.port,
        "unix_socket_directories": f"'{layout.postgres_socket_dir}'",
        "password_encryption": "'scram-sha-256'",
        # Debezium reads the WAL through a logical replication slot.
        "wal_level": "logical",
        "max_replication_slots": 10,
        "max_wal_senders": 10,
        "shared_buffers": "'256MB'",
        "max_connections": 100,
        "logging_collector": "off",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
    }
    return "# Written by `headwater stack up`; edits are overwritten.\n" + "".join(
        f"{key} = {value}\n" for key, value in values.items()
    )


def postgres_hba(settings: Settings) -> str:
    host = settings.postgres.host
    cidr = f"{host}/32" if host.count(".") == 3 else "127.0.0.1/32"
    return (
        "# Written by `headwater stack up`; edits are overwritten.\n"
        "# TYPE  DATABASE     USER  ADDRESS  METHOD\n"
        "local   all          all            scram-sha-256\n"
        f"host    all          all   {cidr}   scram-sha-256\n"
        f"host    replication  all   {cidr}   scram-sha-256\n"
    )


# Kafka and Connect ---------------------------------------------------------------------------
def log4j2_properties() -> str:
    """One console appender: the process's stdout is redirected to data_dir/logs/<name>.log."""
    return (
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDOUT\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.console.ref = STDOUT\n"
        # Chatty at INFO and useless on a one-node dev cluster.
        "logger.reflections.name = org.reflections\n"
        "logger.reflections.level = ERROR\n"
    )


def kafka_server_properties(settings: Settings, layout: StackLayout) -> str:
    host, port = host_port(settings.kafka.bootstrap_servers.split(",")[0], 9092)
    controller = f"{host}:{settings.stack.kafka_controller_port}"
    return properties(
        {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": layout.kafka_log_dir,
            "num.partitions": 3,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "min.insync.replicas": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }
    )


def connect_worker_properties(settings: Settings, layout: StackLayout) -> str:
    host, port = host_port(settings.connect.url, 8083)
    json = "org.apache.kafka.connect.json.JsonConverter"
    return properties(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": CONNECT_GROUP_ID,
            "key.converter": json,
            "value.converter": json,
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": f"{CONNECT_GROUP_ID}-configs",
            "offset.storage.topic": f"{CONNECT_GROUP_ID}-offsets",
            "status.storage.topic": f"{CONNECT_GROUP_ID}-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://{host}:{port}",
            "rest.advertised.host.name": host,
            "rest.advertised.port": port,
            "plugin.path": layout.debezium_plugin_path,
        }
    )


# Elasticsearch -------------------------------------------------------------------------------
def elasticsearch_yml(settings: Settings, layout: StackLayout) -> str:
    host, port = host_port(settings.elasticsearch.url, 9200)
    es_dir = layout.service_dir("elasticsearch")
    return (
        "# Written by `headwater stack up`; edits are overwritten.\n"
        "cluster.name: headwater\n"
        "node.name: headwater-1\n"
        "discovery.type: single-node\n"
        # Loopback only, which also keeps the production bootstrap checks off.
        f"network.host: {host}\n"
        f"http.host: {host}\n"
        f"http.port: {port}\n"
        "transport.port: 9300-9400\n"
        f"path.data: {es_dir / 'data'}\n"
        f"path.logs: {es_dir / 'logs'}\n"
        "xpack.security.enabled: false\n"
        # A dev machine's disk filling up must not turn every index read-only.
        "cluster.routing.allocation.disk.threshold_enabled: false\n"
        "action.destructive_requires_name: false\n"
    )


def elasticsearch_jvm_options(settings: Settings) -> str:
    return "\n".join(heap_flags(settings.stack.elasticsearch_heap)) + "\n"


def kafka_java_command(
    java: Path, heap: str, main_class: str, config_file: Path, log4j2_file: Path
) -> list[str]:
    """A Kafka JVM started from the Kafka home, whose libs/ holds every jar."""
    return [
        str(java),
        *heap_flags(heap),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2_file}",
        "-cp",
        "libs/*",
        main_class,
        str(config_file),
    ]
