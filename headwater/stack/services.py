"""What each stack service is (ports, process marker, order) and how its state is judged; pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from headwater.settings import Settings
from headwater.stack.config import host_port
from headwater.stack.layout import SERVICE_NAMES


class State(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # our process runs but does not answer (yet)
    STOPPED = "stopped"
    EXTERNAL = "external"  # something answers on the port, but not a process we started


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    # Further ports it listens on (Kafka's controller), checked free after `down`.
    other_ports: tuple[int, ...] = ()
    # A string in the command line of our process, to tell it from a recycled pid.
    marker: str = ""
    # PostgreSQL and Elasticsearch refuse to run as root.
    unprivileged: bool = False

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.other_ports)


def services_of(settings: Settings) -> dict[str, Service]:
    """The four services in start order."""
    _, kafka_port = host_port(settings.kafka.bootstrap_servers.split(",")[0], 9092)
    _, connect_port = host_port(settings.connect.url, 8083)
    _, es_port = host_port(settings.elasticsearch.url, 9200)
    services = [
        Service("postgres", settings.postgres.port, marker="postgres", unprivileged=True),
        Service(
            "kafka",
            kafka_port,
            other_ports=(settings.stack.kafka_controller_port,),
            marker="kafka.Kafka",
        ),
        Service("connect", connect_port, marker="org.apache.kafka.connect.cli.ConnectDistributed"),
        Service("elasticsearch", es_port, marker="elasticsearch", unprivileged=True),
    ]
    assert tuple(s.name for s in services) == SERVICE_NAMES
    return {s.name: s for s in services}


@dataclass(frozen=True)
class Probe:
    """What a service said when asked: answering at all, and its version."""

    ok: bool
    version: str | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def evaluate(running: bool, probe: Probe) -> State:
    if running:
        return State.HEALTHY if probe.ok else State.UNHEALTHY
    return State.EXTERNAL if probe.ok else State.STOPPED


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: State
    pid: int | None
    port: int
    version: str | None
    rss_mib: float | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @property
    def serving(self) -> bool:
        return self.state in (State.HEALTHY, State.EXTERNAL)


def all_serving(statuses: list[ServiceStatus]) -> bool:
    return bool(statuses) and all(s.serving for s in statuses)


def es_health_ok(cluster_health: dict[str, Any]) -> bool:
    return cluster_health.get("status") in ("green", "yellow")


def es_node_version(nodes: dict[str, Any]) -> str | None:
    """The version in GET /_nodes/_local?filter_path=nodes.*.version."""
    for node in (nodes.get("nodes") or {}).values():
        if isinstance(node, dict) and node.get("version"):
            return str(node["version"])
    return None


def connect_plugin_version(plugins: list[dict[str, Any]], cls: str) -> str | None:
    """The version of a connector class in GET /connector-plugins, None if not loaded."""
    for plugin in plugins:
        if plugin.get("class") == cls:
            return str(plugin.get("version") or "")
    return None


def kafka_version_from_jars(jar_names: list[str]) -> str | None:
    """'kafka-clients-4.3.1.jar' -> '4.3.1'."""
    for name in sorted(jar_names):
        if name.startswith("kafka-clients-") and name.endswith(".jar"):
            return name.removeprefix("kafka-clients-").removesuffix(".jar")
    return None
