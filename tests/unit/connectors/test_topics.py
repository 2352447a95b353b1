"""Which change topics `connectors apply` creates before a source connector runs."""

from pathlib import Path

from connectors.spec import ConnectorSpec, load_specs
from connectors.topics import PlannedTopic, planned_topics
from tests.unit.connectors.test_spec import ENV, SPECS_DIR


def spec(**config: str) -> ConnectorSpec:
    base = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "topic.prefix": "shop",
        "table.include.list": "public.orders, public.reviews",
        "topic.creation.default.partitions": "3",
        "topic.creation.default.replication.factor": "1",
    }
    return ConnectorSpec(name="s", config={**base, **config}, path=Path("s.yaml"))


def test_one_topic_per_captured_table_with_the_connectors_creation_settings() -> None:
    topics = planned_topics(spec(**{"topic.creation.default.cleanup.policy": "compact"}))
    assert topics == [
        PlannedTopic("shop.public.orders", 3, 1, {"cleanup.policy": "compact"}),
        PlannedTopic("shop.public.reviews", 3, 1, {"cleanup.policy": "compact"}),
    ]


def test_the_shipped_source_gets_a_topic_for_every_table() -> None:
    shipped = load_specs(SPECS_DIR, ENV)[0]
    names = [t.name for t in planned_topics(shipped)]
    assert "shop.public.reviews" in names and "shop.public.products" in names
    assert len(names) == len(shipped.config["table.include.list"].split(","))


def test_nothing_is_planned_when_names_are_not_the_default_ones() -> None:
    assert planned_topics(spec(**{"topic.naming.strategy": "x.Custom"})) == []
    routed = spec(
        transforms="route",
        **{"transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter"},
    )
    assert planned_topics(routed) == []
    sink = spec(**{"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector"})
    assert planned_topics(sink) == []
