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
# How Kafka and Connect processes name the Kafka password they get in their environment; their
# files hold this reference, which Kafka's EnvVarConfigProvider resolves at start-up.
KAFKA_PASSWORD_REF = "${env:HW_KAFKA_PASSWORD}"
ENV_PROVIDER = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
FILE_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"
# Elasticsearch's HTTP certificate and key, relative to its config directory (secure mode).
ES_CERTS = {"ca": "certs/http_ca.crt", "cert": "certs/http.crt", "key": "certs/http.key"}


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
        "max_slot_wal_keep_size": f"'{settings.stack.postgres_max_slot_wal_keep_size}'",
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
    """One KRaft node. Secure mode: the client listener takes SASL/SCRAM, the controller's
    SASL/PLAIN (KRaft keeps SCRAM users in the metadata the controller serves), and the
    password is a reference to the broker's environment, never in the file."""
    host, port = host_port(settings.kafka.bootstrap_servers.split(",")[0], 9092)
    controller = f"{host}:{settings.stack.kafka_controller_port}"
    # The plain listener keeps the name existing data directories were formatted with.
    client = "CLIENT" if settings.stack.secure else "PLAINTEXT"
    listeners = f"{client}://{host}:{port},CONTROLLER://{controller}"
    values: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": controller,
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    }
    if settings.stack.secure:
        user, mechanism = settings.stack.kafka_user, settings.kafka.sasl_mechanism
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        login = f'username="{user}" password="{KAFKA_PASSWORD_REF}"'
        values |= {
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            "sasl.mechanism.controller.protocol": "PLAIN",
            f"listener.name.client.{mechanism.lower()}.sasl.jaas.config": (
                f"{scram} required {login};"
            ),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required {login} user_{user}="{KAFKA_PASSWORD_REF}";'
            ),
            "config.providers": "env",
            "config.providers.env.class": ENV_PROVIDER,
            "config.providers.env.param.allowlist.pattern": "^HW_KAFKA_PASSWORD$",
        }
    return properties(
        values
        | {
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


def kafka_scram_args(settings: Settings) -> str:
    """`kafka-storage format` arguments creating the SCRAM user, for a 0600 @argfile: the
    password stays off the command line. Generated passwords are URL-safe tokens."""
    password = settings.kafka.password.get_secret_value() if settings.kafka.password else ""
    if not password or any(c in password for c in ',[]="\\ \n'):
        raise ValueError(
            'HW_KAFKA_PASSWORD must be set and free of , [ ] = " \\ and spaces for the '
            "secured stack (`make setup` writes a generated one)"
        )
    user, mechanism = settings.stack.kafka_user, settings.kafka.sasl_mechanism
    return f"--add-scram\n{mechanism}=[name={user},password={password}]\n"


def connect_worker_properties(settings: Settings, layout: StackLayout) -> str:
    """Connect's worker. Connector configs name secrets as ${env:NAME} (or ${file:...}), which
    the providers here resolve at run time from the secrets Connect gets in its environment
    (only HW_ variables); in secure mode the worker and the clients it makes for connectors
    authenticate to Kafka the same way."""
    host, port = host_port(settings.connect.url, 8083)
    json = "org.apache.kafka.connect.json.JsonConverter"
    security = settings.kafka.java_client_properties(KAFKA_PASSWORD_REF)
    clients = {
        f"{prefix}{key}": value
        for prefix in ("", "producer.", "consumer.", "admin.")
        for key, value in security.items()
    }
    return properties(
        clients
        | {
            "config.providers": "env,file",
            "config.providers.env.class": ENV_PROVIDER,
            "config.providers.env.param.allowlist.pattern": "^HW_.*",
            "config.providers.file.class": FILE_PROVIDER,
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": CONNECT_GROUP_ID,
            "key.converter": json,
            "value.converter": json,
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": settings.connect.configs_topic,
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
        f"{elasticsearch_security(settings.stack.secure)}"
        # A dev machine's disk filling up must not turn every index read-only.
        "cluster.routing.allocation.disk.threshold_enabled: false\n"
        "action.destructive_requires_name: false\n"
    )


def elasticsearch_security(secure: bool) -> str:
    """Security off; or on, with TLS on HTTP from the certificates `stack up` makes. The
    transport layer stays plain: one node on loopback, which single-node discovery allows."""
    if not secure:
        return "xpack.security.enabled: false\n"
    return (
        "xpack.security.enabled: true\n"
        "xpack.security.http.ssl.enabled: true\n"
        f"xpack.security.http.ssl.certificate: {ES_CERTS['cert']}\n"
        f"xpack.security.http.ssl.key: {ES_CERTS['key']}\n"
        f"xpack.security.http.ssl.certificate_authorities: [{ES_CERTS['ca']}]\n"
        "xpack.security.transport.ssl.enabled: false\n"
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
