"""Declared mirrors against the real stack: the shop database, Debezium, Kafka, the warehouse.

Each test declares its mirrors in its own pipelines directory, under random names, and loads
them into its own analytics database; the shop tables and their change topics are the real,
shared ones, so the tests look at the rows they wrote themselves, and other writers may be
changing the shop meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import yaml
from pyspark.sql import SparkSession

from batch import io
from batch import mirror_transforms as mt
from batch.jobs import mirror
from batch.jobs.warehouse import QualityFailed
from batch.settings import BatchSettings
from headwater.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.spark]

PRODUCT_COLUMNS = {
    "id": "bigint",
    "sku": "text",
    "name": "text",
    "category": "text",
    "brand": "text",
    "price": "numeric(10,2)",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


@pytest.fixture
def isolated(stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings with a fresh analytics database and an empty pipelines directory of our own."""
    with psycopg.connect(stack.postgres.dsn(stack.postgres.source_db)) as shop:
        if shop.execute("SELECT to_regclass('public.reviews')").fetchone() == (None,):
            pytest.fail("the shop schema is missing: run `headwater db migrate`")
    db = f"analytics_mirror_{uuid.uuid4().hex[:8]}"
    (tmp_path / "mirrors").mkdir()
    settings = stack.model_copy(
        update={
            "postgres": stack.postgres.model_copy(update={"analytics_db": db}),
            "pipelines": stack.pipelines.model_copy(update={"dir": tmp_path}),
        }
    )
    yield settings
    with psycopg.connect(stack.postgres.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def declare(settings: Settings, name: str, **declaration: Any) -> None:
    path = settings.pipelines.dir / "mirrors" / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **declaration}), encoding="utf-8")


def shop(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.postgres.dsn(settings.postgres.source_db), autocommit=True)


def rows(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with io.connect(settings) as conn:
        return conn.execute(query, params).fetchall()


def unchanged_or_newer(
    before: dict[Any, tuple[Any, ...]], after: dict[Any, tuple[Any, ...]]
) -> None:
    """Every row of `before` is in `after` as it was, unless a newer change (LSN) replaced it:
    other writers may change the shop between two runs, our replays must not."""
    for key, row in before.items():
        if key in after and after[key][-1] > row[-1]:
            continue
        assert after.get(key) == row, key


def test_mirror_follows_the_source_and_a_replay_changes_nothing(
    isolated: Settings, spark: SparkSession, batch_settings: BatchSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    name, schema = f"products_{tag}", f"mirror_{tag}"
    declare(
        isolated,
        name,
        source={"connector": "shop-source", "table": "public.products"},
        id="id",
        columns=PRODUCT_COLUMNS,
        history=True,
        target_table=f"{schema}.products",
    )
    with shop(isolated) as conn:
        ids = [
            conn.execute(
                "INSERT INTO products (sku, name, category, brand, price, stock) "
                "VALUES (%s, %s, 'mirror', 'b', %s, 3) RETURNING id",
                (f"{tag}-{n}", f"thing {n}", Decimal(f"{n}.25")),
            ).fetchone()[0]  # type: ignore[index]
            for n in range(3)
        ]
        conn.execute(
            "UPDATE products SET name = 'renamed', price = 9.99, updated_at = now() WHERE id = %s",
            (ids[0],),
        )
        conn.execute("DELETE FROM products WHERE id = %s", (ids[2],))

    first = mirror.run(isolated, batch_settings, name, spark)
    assert first.rows[f"{schema}.products"] > 0

    columns = ", ".join(PRODUCT_COLUMNS)
    with shop(isolated) as conn:
        source = conn.execute(
            f"SELECT {columns} FROM products WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    mirrored = rows(
        isolated, f"SELECT {columns} FROM {schema}.products WHERE id = ANY(%s) ORDER BY id", ids
    )
    assert mirrored == source
    assert [r[0] for r in mirrored] == ids[:2]

    versions = rows(
        isolated,
        f"SELECT id, name, valid_to IS NULL, is_current FROM {schema}.products_history "
        "WHERE id = ANY(%s) ORDER BY id, hw_lsn",
        ids,
    )
    assert versions == [
        (ids[0], "thing 0", False, False),
        (ids[0], "renamed", True, True),
        (ids[1], "thing 1", True, True),
        (ids[2], "thing 2", False, False),  # closed by its delete
    ]

    def state() -> dict[str, dict[Any, tuple[Any, ...]]]:
        current = rows(isolated, f"SELECT {columns}, hw_lsn FROM {schema}.products")
        history = rows(
            isolated,
            f"SELECT {columns}, valid_from, valid_to, is_current, hw_lsn "
            f"FROM {schema}.products_history",
        )
        return {
            "current": {r[0]: r for r in current},
            # A version is keyed by its id and LSN; a newer change may only close it.
            "history": {(r[0], r[-1]): (*r[:-3], r[-1]) for r in history},
        }

    before = state()
    again = mirror.run(isolated, batch_settings, name, spark)
    replayed = mirror.run(isolated, batch_settings, name, spark, replay=True)
    assert replayed.rows[f"{schema}.products"] > again.rows[f"{schema}.products"]
    after = state()
    unchanged_or_newer(before["current"], after["current"])
    unchanged_or_newer(before["history"], after["history"])

    # A column added to the declaration becomes a warehouse column, filled by the next run.
    declare(
        isolated,
        name,
        source={"connector": "shop-source", "table": "public.products"},
        id="id",
        columns={**PRODUCT_COLUMNS, "stock": "integer"},
        history=True,
        target_table=f"{schema}.products",
    )
    mirror.run(isolated, batch_settings, name, spark)
    stock = rows(isolated, f"SELECT stock FROM {schema}.products WHERE id = ANY(%s)", ids)
    assert stock == [(3,), (3,)]

    with io.connect(isolated) as conn:
        runs = conn.execute(
            "SELECT status, quality FROM batch_runs WHERE job = %s", (mirror.job_name(name),)
        ).fetchall()
    assert runs == [("succeeded", "passed")] * 4


def test_a_load_that_fails_its_suite_is_rolled_back_and_recorded(
    isolated: Settings, spark: SparkSession, batch_settings: BatchSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"reviews_{tag}"
    # `body` is text in the shop: read as an integer, every value fails the suite.
    declare(
        isolated,
        name,
        source={"connector": "shop-source", "table": "public.reviews"},
        id="id",
        columns={"id": "bigint", "rating": "smallint", "body": "integer"},
    )
    with shop(isolated) as conn:
        customer = conn.execute(
            "INSERT INTO customers (email, full_name, country) VALUES (%s, 'M', 'FR') RETURNING id",
            (f"{tag}@mirror.test",),
        ).fetchone()[0]  # type: ignore[index]
        product = conn.execute(
            "INSERT INTO products (sku, name, category, brand, price) "
            "VALUES (%s, 'p', 'c', 'b', 1) RETURNING id",
            (tag,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO reviews (product_id, customer_id, rating, body) VALUES (%s, %s, 4, 'ok')",
            (product, customer),
        )
    with pytest.raises(QualityFailed) as failed:
        mirror.run(isolated, batch_settings, name, spark)
    report = failed.value.report.read_text()
    assert "FAILED" in report and "_bad_body" in report
    assert rows(isolated, f"SELECT count(*) FROM {name}") == [(0,)]
    with io.connect(isolated) as conn:
        last = conn.execute(
            "SELECT status, quality FROM batch_runs WHERE job = %s", (mirror.job_name(name),)
        ).fetchall()
        stored = conn.execute(
            "SELECT count(*) FROM batch_offsets WHERE job = %s", (mirror.job_name(name),)
        ).fetchone()
    assert last == [("failed", "failed")]
    assert stored == (0,)


def _staged(shape: mt.MirrorShape, changes: list[dict[str, Any]]) -> mirror.Materialized:
    """Arrow tables as `materialize` makes them, from (id, name, lsn, deleted) changes."""
    live = [c for c in changes if not c["deleted"]]
    gone = [c for c in changes if c["deleted"]]
    ts = pa.array([None] * len(live), pa.timestamp("us", "UTC"))
    return mirror.Materialized(
        [],
        pa.table(
            {
                "id": pa.array([c["id"] for c in live], pa.int64()),
                "name": pa.array([c["name"] for c in live], pa.string()),
                "_lsn": pa.array([c["lsn"] for c in live], pa.int64()),
                "_ts": ts,
                "_unchanged": pa.array([None] * len(live), pa.list_(pa.string())),
                "_errors": pa.array([None] * len(live), pa.list_(pa.string())),
            }
        ),
        pa.table(
            {
                "id": pa.array([c["id"] for c in gone], pa.int64()),
                "_lsn": pa.array([c["lsn"] for c in gone], pa.int64()),
                "_ts": pa.array([None] * len(gone), pa.timestamp("us", "UTC")),
            }
        ),
        pa.table(
            {
                "id": pa.array([], pa.int64()),
                "name": pa.array([], pa.string()),
                "_errors": pa.array([], pa.list_(pa.string())),
            }
        ),
        None,
    )


def test_older_or_repeated_changes_never_overwrite_newer_rows(
    isolated: Settings, batch_settings: BatchSettings
) -> None:
    """The merge alone, on PostgreSQL: what an out-of-order or redelivered batch can do."""
    name = f"things_{uuid.uuid4().hex[:8]}"
    declare(
        isolated,
        name,
        source={"connector": "shop-source", "table": "public.products"},
        id="id",
        columns={"id": "bigint", "name": "text"},
    )
    declaration = mirror.load_pipelines(isolated).mirror(name)
    shape = mt.MirrorShape.of(declaration)
    target = mirror.Target.of(declaration)
    io.ensure_database(isolated)
    job = mirror.job_name(name)

    def load(changes: list[dict[str, Any]], count: int) -> None:
        with io.connect(isolated) as conn:
            mirror.load(
                conn,
                batch_settings,
                job,
                declaration,
                shape,
                target,
                _staged(shape, changes),
                io.SourceCount(count, 0),
                {},
                "incremental",
                datetime.now(UTC),
            )

    with io.connect(isolated) as conn:
        io.ensure_schema(conn)
        mirror.ensure_tables(conn, job, shape, target, history=False)
    load(
        [
            {"id": 1, "name": "v2", "lsn": 20, "deleted": False},
            {"id": 2, "name": "x", "lsn": 5, "deleted": False},
        ],
        2,
    )
    # Older changes of both keys arrive later, then key 2's delete and, after it, its insert again.
    load([{"id": 1, "name": "v1", "lsn": 10, "deleted": False}], 2)
    load([{"id": 2, "name": "x", "lsn": 30, "deleted": True}], 1)
    load([{"id": 2, "name": "x", "lsn": 5, "deleted": False}], 1)
    assert rows(isolated, f"SELECT id, name, hw_lsn FROM {name} ORDER BY id") == [(1, "v2", 20)]
    # The same batch twice, and a real re-insert after the delete.
    load([{"id": 2, "name": "back", "lsn": 40, "deleted": False}], 2)
    load([{"id": 2, "name": "back", "lsn": 40, "deleted": False}], 2)
    assert rows(isolated, f"SELECT id, name, hw_lsn FROM {name} ORDER BY id") == [
        (1, "v2", 20),
        (2, "back", 40),
    ]
    # A count that disagrees with the source refuses the load.
    with pytest.raises(QualityFailed):
        load([{"id": 3, "name": "new", "lsn": 50, "deleted": False}], 2)
    assert rows(isolated, f"SELECT count(*) FROM {name}") == [(2,)]
