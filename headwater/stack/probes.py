"""Asking each running service whether it is healthy and which version it is (network I/O)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from headwater.settings import Settings
from headwater.stack.analysis_plugin import loaded_plugins
from headwater.stack.config import DEBEZIUM_POSTGRES_CLASS
from headwater.stack.services import (
    Probe,
    connect_plugin_version,
    es_health_ok,
    es_node_version,
    kafka_version_from_jars,
)

TIMEOUT_S = 3.0

_quiet = logging.getLogger("headwater.stack.kafka-probe")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def probe_postgres(settings: Settings, kafka_home: Path | None = None) -> Probe:
    import psycopg

    pg = settings.postgres
    try:
        with psycopg.connect(
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=pg.password.get_secret_value(),
            dbname="postgres",
            connect_timeout=int(TIMEOUT_S),
        ) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        # The message names host, port and user at most, never the password.
        return Probe(False, detail=str(exc).strip().splitlines()[0] if str(exc) else "error")
    return Probe(True, version=str(row[0]) if row else None)


def probe_kafka(settings: Settings, kafka_home: Path | None = None) -> Probe:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            **settings.kafka.client_config(),
            "socket.connection.setup.timeout.ms": int(TIMEOUT_S * 1000),
            "logger": _quiet,  # type: ignore[dict-item]  # a Logger is accepted
        }
    )
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        return Probe(False, detail=str(exc.args[0]) if exc.args else "unreachable")
    version = None
    if kafka_home is not None and (kafka_home / "libs").is_dir():
        version = kafka_version_from_jars([p.name for p in (kafka_home / "libs").iterdir()])
    return Probe(True, version=version, detail=f"{len(metadata.brokers)} broker(s)")


def _get_json(url: str, timeout: float = TIMEOUT_S) -> object:
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


def probe_connect(settings: Settings, kafka_home: Path | None = None) -> Probe:
    import httpx

    base = settings.connect.url.rstrip("/")
    try:
        root = _get_json(f"{base}/")
        plugins = _get_json(f"{base}/connector-plugins")
    except (httpx.HTTPError, ValueError) as exc:
        return Probe(False, detail=f"{type(exc).__name__}: {exc}")
    version = root.get("version") if isinstance(root, dict) else None
    debezium = connect_plugin_version(
        plugins if isinstance(plugins, list) else [], DEBEZIUM_POSTGRES_CLASS
    )
    if debezium is None:
        return Probe(False, version=version, detail=f"{DEBEZIUM_POSTGRES_CLASS} is not loaded")
    return Probe(True, version=f"{version} (debezium {debezium})", extra={"debezium": debezium})


def probe_elasticsearch(settings: Settings, kafka_home: Path | None = None) -> Probe:
    import httpx

    es = settings.elasticsearch
    base = es.url.rstrip("/")
    try:
        with httpx.Client(timeout=TIMEOUT_S, **es.httpx_options()) as http:
            response = http.get(f"{base}/_cluster/health")
            response.raise_for_status()
            health = response.json()
            # Not GET /: the integ-test distribution has no handler for it (405).
            nodes = http.get(
                f"{base}/_nodes/_local", params={"filter_path": "nodes.*.version"}
            ).json()
    except (httpx.HTTPError, ValueError) as exc:
        return Probe(False, detail=f"{type(exc).__name__}: {exc}")
    version = es_node_version(nodes) if isinstance(nodes, dict) else None
    status = health.get("status") if isinstance(health, dict) else None
    ok = isinstance(health, dict) and es_health_ok(health)
    return Probe(ok, version=version, detail=f"cluster {status}")


def elasticsearch_plugins(settings: Settings) -> dict[str, str] | None:
    """name -> version of the plugins the running node loaded; None if it cannot be asked."""
    import httpx

    es = settings.elasticsearch
    try:
        response = httpx.get(
            f"{es.url.rstrip('/')}/_nodes/_local/plugins",
            params={"filter_path": "nodes.*.plugins.name,nodes.*.plugins.version"},
            timeout=TIMEOUT_S,
            **es.httpx_options(),
        )
        response.raise_for_status()
        return loaded_plugins(response.json())
    except (httpx.HTTPError, ValueError):
        return None


PROBES: dict[str, Callable[[Settings, Path | None], Probe]] = {
    "postgres": probe_postgres,
    "kafka": probe_kafka,
    "connect": probe_connect,
    "elasticsearch": probe_elasticsearch,
}
