"""Binding declared sources to connector specs: topics, databases, and what cannot feed them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.sources import FLATTEN, POSTGRES_CONNECTOR, bind
from connectors.spec import ConnectorSpec, load_specs, parse_spec
from headwater.pipelines.declarations import (
    DeclarationError,
    IndexDeclaration,
    MirrorDeclaration,
    Pipelines,
    Source,
    load,
)
from headwater.settings import PostgresSettings

ROOT = Path(__file__).parents[3]
ENV = {
    "HW_PG_CONNECT_HOST": "postgres",
    "HW_PG_PORT": "5432",
    "HW_PG_USER": "u",
    "HW_PG_PASSWORD": "s3cret",
    "HW_PG_SOURCE_DB": "shop",
    "HW_KAFKA_TOPIC_PREFIX": "shop",
}
CONFIG = {
    "connector.class": POSTGRES_CONNECTOR,
    "database.hostname": "postgres",
    "database.port": "5432",
    "database.user": "u",
    "database.password": "${env:HW_PG_PASSWORD}",
    "database.dbname": "shop",
    "topic.prefix": "shop",
    "table.include.list": "public.products, public.reviews,public.orders",
    "decimal.handling.mode": "string",
    "time.precision.mode": "adaptive_time_microseconds",
    "transforms": "unwrap",
    "transforms.unwrap.type": FLATTEN,
    "transforms.unwrap.add.fields": "op,lsn,source.ts_ms,table",
}
INDEX_PATH = Path("pipelines/indexes/products.yaml")
MIRROR_PATH = Path("pipelines/mirrors/orders.yaml")

SpecFactory = Callable[..., ConnectorSpec]


@pytest.fixture
def postgres() -> PostgresSettings:
    # Every field given, so nothing comes from the environment or a .env file.
    return PostgresSettings(
        host="127.0.0.1",
        port=6543,
        user="headwater",
        password="pw",
        source_db="shop",
        connect_host="postgres",
    )


@pytest.fixture
def spec(tmp_path: Path) -> SpecFactory:
    """A connector spec file as `connectors.spec` parses it; `None` removes a config key."""

    def _spec(name: str = "shop-source", **config: str | None) -> ConnectorSpec:
        merged = {**CONFIG, **{k.replace("__", "."): v for k, v in config.items()}}
        lines = [f"name: {name}", "config:"]
        lines += [f"  {k}: '{v}'" for k, v in merged.items() if v is not None]
        path = tmp_path / f"{name}.yaml"
        return parse_spec(path, "\n".join(lines) + "\n", {})

    return _spec


def pipelines(
    table: str = "public.products",
    connector: str = "shop-source",
    summary: dict[str, Any] | None = None,
    mirror: str | None = None,
) -> Pipelines:
    products = IndexDeclaration.model_validate(
        {
            "name": "products",
            "source": {"connector": connector, "table": table},
            "id": "id",
            "fields": {"id": {"type": "bigint"}},
            "summaries": [summary] if summary else [],
            "path": INDEX_PATH,
        }
    )
    mirrors = {}
    if mirror:
        mirrors["orders"] = MirrorDeclaration.model_validate(
            {
                "name": "orders",
                "source": {"connector": connector, "table": mirror},
                "id": "id",
                "columns": {"id": "bigint"},
                "path": MIRROR_PATH,
            }
        )
    return Pipelines(indexes={"products": products}, mirrors=mirrors)


SECRETS = {"HW_PG_PASSWORD": "s3cret"}


def problems_of(found: Pipelines, specs: list[ConnectorSpec], pg: PostgresSettings) -> list[str]:
    with pytest.raises(DeclarationError) as err:
        bind(found, specs, pg, SECRETS)
    return err.value.problems


def test_a_source_binds_to_its_topic_and_database(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    bindings = bind(pipelines(mirror="public.orders"), [spec()], postgres, SECRETS)
    products = bindings[Source(connector="shop-source", table="public.products")]
    assert products.connector == "shop-source"
    assert products.topic == "shop.public.products"
    assert products.database == "shop"
    # Connect reaches the database as "postgres"; from here it is postgres.host.
    assert products.dsn == "host=127.0.0.1 port=5432 dbname=shop user=u password=s3cret"
    assert "s3cret" not in repr(products)
    orders = bindings[Source(connector="shop-source", table="public.orders")]
    assert orders.topic == "shop.public.orders"


def test_a_host_other_than_the_connect_host_is_kept(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    bindings = bind(pipelines(), [spec(database__hostname="db.internal")], postgres, SECRETS)
    (binding,) = bindings.values()
    assert binding.dsn.startswith("host=db.internal port=5432 ")


def test_summary_sources_are_bound_too(spec: SpecFactory, postgres: PostgresSettings) -> None:
    summary = {
        "name": "reviews",
        "source": {"connector": "shop-source", "table": "public.reviews"},
        "id": "id",
        "parent_key": "product_id",
        "fields": {"review_count": {"op": "count"}},
    }
    bindings = bind(pipelines(summary=summary), [spec()], postgres, SECRETS)
    assert {b.topic for b in bindings.values()} == {"shop.public.products", "shop.public.reviews"}


def test_the_shop_declarations_bind_to_the_shop_connector(postgres: PostgresSettings) -> None:
    specs = load_specs(ROOT / "connectors" / "specs", ENV)
    bindings = bind(load(ROOT / "pipelines"), specs, postgres, SECRETS)
    assert {s.table: b.topic for s, b in bindings.items()} == {
        "public.products": "shop.public.products",
        "public.reviews": "shop.public.reviews",
        "public.customers": "shop.public.customers",
        "public.orders": "shop.public.orders",
    }
    assert all(b.dsn.startswith("host=127.0.0.1 port=5432 dbname=shop ") for b in bindings.values())


def test_an_unknown_connector_is_named_with_the_known_ones(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    found = pipelines(connector="shop-sauce")
    assert problems_of(found, [spec(), spec("crm-source")], postgres) == [
        f"{INDEX_PATH}: source.connector: no connector file named 'shop-sauce' "
        "(known: crm-source, shop-source)"
    ]


def test_a_table_the_connector_does_not_capture(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    shop = spec()
    problems = problems_of(pipelines(table="public.customers"), [shop], postgres)
    assert problems == [
        f"{INDEX_PATH}: source.table: public.customers is not in {shop.path} table.include.list"
    ]


def test_every_declaration_at_fault_is_named(spec: SpecFactory, postgres: PostgresSettings) -> None:
    summary = {
        "name": "kids",
        "source": {"connector": "shop-source", "table": "public.kids"},
        "id": "id",
        "parent_key": "product_id",
        "fields": {"n": {"op": "count"}},
    }
    shop = spec()
    found = pipelines(table="public.things", summary=summary, mirror="public.ledger")
    assert problems_of(found, [shop], postgres) == [
        f"{INDEX_PATH}: source.table: public.things is not in {shop.path} table.include.list",
        f"{INDEX_PATH}: summaries.0.source.table: public.kids is not in {shop.path} "
        "table.include.list",
        f"{MIRROR_PATH}: source.table: public.ledger is not in {shop.path} table.include.list",
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"decimal__handling__mode": "precise"}, "config.decimal.handling.mode must be 'string'"),
        ({"decimal__handling__mode": None}, "config.decimal.handling.mode must be 'string'"),
        (
            {"time__precision__mode": "connect"},
            "config.time.precision.mode must be 'adaptive_time_microseconds'",
        ),
        ({"transforms": None}, f"transforms must include {FLATTEN}"),
        (
            {"transforms__unwrap__type": "io.debezium.transforms.ByLogicalTableRouter"},
            f"transforms must include {FLATTEN}",
        ),
        (
            {"transforms__unwrap__add__fields": "op,source.ts_ms"},
            "transforms.unwrap.add.fields must include op,lsn,table",
        ),
        (
            {"connector__class": "io.debezium.connector.mysql.MySqlConnector"},
            f"connector.class must be {POSTGRES_CONNECTOR}",
        ),
    ],
)
def test_a_connector_that_cannot_feed_pipelines_is_named_with_the_key(
    spec: SpecFactory, postgres: PostgresSettings, config: dict[str, str | None], message: str
) -> None:
    shop = spec(**config)
    found = pipelines(mirror="public.orders")
    # Reported once, however many declarations use the connector, naming the first of them and
    # the connector file and key to fix.
    assert problems_of(found, [shop], postgres) == [
        f"{INDEX_PATH}: source.connector: shop-source cannot feed pipelines: {shop.path}: {message}"
    ]


def test_a_flattening_transform_later_in_the_chain_counts(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    shop = spec(
        transforms="route, unwrap",
        transforms__route__type="io.debezium.transforms.ByLogicalTableRouter",
    )
    assert len(bind(pipelines(), [shop], postgres, SECRETS)) == 1


def test_problems_of_several_connectors_are_all_reported(
    spec: SpecFactory, postgres: PostgresSettings
) -> None:
    shop = spec(decimal__handling__mode="double")
    summary = {
        "name": "kids",
        "source": {"connector": "shop-source", "table": "public.kids"},
        "id": "id",
        "parent_key": "product_id",
        "fields": {"n": {"op": "count"}},
    }
    found = pipelines(summary=summary, mirror="public.orders")
    other = Pipelines(
        indexes=found.indexes,
        mirrors={
            "orders": found.mirrors["orders"].model_copy(
                update={"source": Source(connector="crm-source", table="public.orders")}
            )
        },
    )
    problems = problems_of(other, [shop], postgres)
    assert problems == [
        f"{INDEX_PATH}: source.connector: shop-source cannot feed pipelines: "
        f"{shop.path}: config.decimal.handling.mode must be 'string'",
        f"{MIRROR_PATH}: source.connector: no connector file named 'crm-source' "
        "(known: shop-source)",
    ]
