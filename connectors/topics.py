"""The change topics a Debezium source will write to, created before the connector runs.

Kafka Connect creates a table's topic only when the first change of that table arrives. A
consumer that subscribed earlier does not see the new topic until its next metadata refresh
(minutes) and, reading from `latest`, then skips the records already in it. So `connectors
apply` creates every captured table's topic up front, with the connector's own
`topic.creation.default.*` settings: a quiet table never leaves a worker blind.

`planned_topics` is pure; `ensure_topics` talks to Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.spec import ConnectorSpec
from headwater.settings import KafkaSettings

_CREATION = "topic.creation.default."


@dataclass(frozen=True)
class PlannedTopic:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def planned_topics(spec: ConnectorSpec) -> list[PlannedTopic]:
    """`<topic.prefix>.<schema>.<table>` for each table in `table.include.list`.

    Empty unless the connector is a Debezium source naming its tables explicitly with the
    default topic naming (a custom naming strategy or a topic-routing transform decides names
    this cannot know).
    """
    config = spec.config
    tables = [t.strip() for t in config.get("table.include.list", "").split(",") if t.strip()]
    prefix = config.get("topic.prefix", "")
    if not spec.connector_class.startswith("io.debezium.") or not tables or not prefix:
        return []
    if "topic.naming.strategy" in config or _routes_topics(config):
        return []
    partitions = int(config.get(_CREATION + "partitions", "1"))
    replication = int(config.get(_CREATION + "replication.factor", "1"))
    creation = {k[len(_CREATION) :]: v for k, v in config.items() if k.startswith(_CREATION)}
    extra = {k: v for k, v in creation.items() if k not in ("partitions", "replication.factor")}
    return [PlannedTopic(f"{prefix}.{table}", partitions, replication, extra) for table in tables]


def _routes_topics(config: dict[str, str]) -> bool:
    names = [n.strip() for n in config.get("transforms", "").split(",") if n.strip()]
    types = [config.get(f"transforms.{name}.type", "") for name in names]
    return any("Router" in t or "Reroute" in t for t in types)


def ensure_topics(
    kafka: KafkaSettings, topics: list[PlannedTopic], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet on the `kafka` cluster; return the names created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    if not topics:
        return []
    # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
    # log_level 4: no INFO lines from librdkafka on our output.
    admin = AdminClient({**kafka.client_config(), "log_level": 4})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise ConnectionError(f"Kafka at {kafka.bootstrap_servers} did not answer: {exc}") from exc
    missing = [t for t in topics if t.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t.name, t.partitions, t.replication, config=t.config) for t in missing],
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConnectionError(f"could not create topic {name}: {exc}") from exc
    return created
