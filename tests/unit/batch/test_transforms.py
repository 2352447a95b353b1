"""The warehouse transformations on inline change events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from batch import transforms as t
from tests.unit.batch.conftest import RawRows, event

pytestmark = pytest.mark.spark

UTC = UTC


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rows(df: DataFrame, *order: str) -> list[dict[str, Any]]:
    return [r.asDict() for r in df.orderBy(*order).collect()]


def customer(op: str, lsn: int, cid: int, country: str, updated: str, **extra: Any) -> dict:
    return event(
        op,
        lsn,
        id=cid,
        email=f"c{cid}@example.com",
        full_name=f"Customer {cid}",
        country=country,
        created_at="2026-01-01T00:00:00Z",
        updated_at=updated,
        **extra,
    )


def test_decode_types_values_and_drops_tombstones(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event(
                "c",
                10,
                id=1,
                order_id=7,
                product_id=3,
                quantity=2,
                unit_price="12.50",
                created_at="2026-03-04T05:06:07.123456Z",
            ),
            None,
            {
                **event(
                    "d",
                    11,
                    id=1,
                    order_id=7,
                    product_id=3,
                    quantity=2,
                    unit_price="12.50",
                    created_at="2026-03-04T05:06:07Z",
                ),
                "__deleted": True,
            },
        ]
    )
    decoded = rows(t.transform_decode(raw, "order_items"), "_offset")
    assert len(decoded) == 2
    first, second = decoded
    assert first["unit_price"] == Decimal("12.50")
    assert first["quantity"] == 2
    assert first["created_at"] == datetime(2026, 3, 4, 5, 6, 7, 123456)
    assert first["_deleted"] is False and second["_deleted"] is True
    assert first["_lsn"] == 10 and first["_op"] == "c"


def test_decode_turns_uncastable_values_into_nulls(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event(
                "c",
                1,
                id=1,
                order_id=1,
                product_id=1,
                quantity="x",
                unit_price="abc",
                created_at="2026-01-01T00:00:00Z",
            )
        ]
    )
    (row,) = rows(t.transform_decode(raw, "order_items"), "id")
    assert row["unit_price"] is None and row["quantity"] is None


def test_decode_accepts_string_deleted_flag_without_op_d(raw_rows: RawRows) -> None:
    value = event(
        "u",
        5,
        id=2,
        order_id=1,
        product_id=1,
        quantity=1,
        unit_price="1.00",
        created_at="2026-01-01T00:00:00Z",
    )
    value["__deleted"] = "true"
    (row,) = rows(t.transform_decode(raw_rows([value]), "order_items"), "id")
    assert row["_deleted"] is True


def test_latest_state_honours_order_and_deletes(raw_rows: RawRows) -> None:
    item: dict[str, Any] = {
        "order_id": 1,
        "product_id": 1,
        "quantity": 1,
        "created_at": "2026-01-01T00:00:00Z",
    }
    raw = raw_rows(
        [
            event("c", 1, id=1, unit_price="1.00", **item),
            event("u", 3, id=1, unit_price="3.00", **item),
            # Delivered late but committed earlier: must not win.
            event("u", 2, id=1, unit_price="2.00", **item),
            event("c", 4, id=2, unit_price="5.00", **item),
            event("d", 5, id=2, unit_price="5.00", **item),
            None,
        ]
    )
    latest = t.transform_decode(raw, "order_items").transform(t.transform_latest_state)
    by_id = {r["id"]: r for r in rows(latest, "id")}
    assert by_id[1]["unit_price"] == Decimal("3.00") and not by_id[1]["_deleted"]
    assert by_id[2]["_deleted"]
    live = rows(t.transform_live(latest), "id")
    assert [r["id"] for r in live] == [1]
    assert not any(c.startswith("_") for c in live[0])
    assert [r["id"] for r in rows(t.transform_deleted_keys(latest), "id")] == [2]


def _empty_dim(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [],
        "customer_key bigint, customer_id bigint, email string, full_name string, "
        "country string, valid_from timestamp, valid_to timestamp, is_current boolean",
    )


def test_dim_customer_opens_a_version_per_change(spark: SparkSession, raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            customer("c", 1, 1, "FR", "2026-01-01T00:00:00Z"),
            customer("u", 2, 1, "DE", "2026-02-01T00:00:00Z"),
            # An update of an untracked column (same attributes): no new version.
            customer("u", 3, 1, "DE", "2026-02-15T00:00:00Z"),
            customer("c", 4, 2, "IT", "2026-01-10T00:00:00Z"),
        ]
    )
    changes = t.transform_decode(raw, "customers")
    dim = rows(t.transform_dim_customer(_empty_dim(spark), changes), "customer_id", "valid_from")
    assert [(r["customer_id"], r["country"], r["is_current"]) for r in dim] == [
        (1, "FR", False),
        (1, "DE", True),
        (2, "IT", True),
    ]
    assert dim[0]["valid_to"] == dim[1]["valid_from"] == datetime(2026, 2, 1)
    assert dim[1]["valid_to"] is None
    assert len({r["customer_key"] for r in dim}) == 3


def test_dim_customer_extends_stored_history(spark: SparkSession, raw_rows: RawRows) -> None:
    first = t.transform_dim_customer(
        _empty_dim(spark),
        t.transform_decode(
            raw_rows(
                [
                    customer("c", 1, 1, "FR", "2026-01-01T00:00:00Z"),
                    customer("c", 2, 2, "IT", "2026-01-01T00:00:00Z"),
                ]
            ),
            "customers",
        ),
    )
    stored = spark.createDataFrame(first.collect(), first.schema)
    second_changes = t.transform_decode(
        raw_rows([customer("u", 5, 1, "ES", "2026-03-01T00:00:00Z")]), "customers"
    )
    updated = rows(t.transform_dim_customer(stored, second_changes), "valid_from")
    # Only the touched customer comes back, with its whole history.
    assert [(r["customer_id"], r["country"], r["is_current"]) for r in updated] == [
        (1, "FR", False),
        (1, "ES", True),
    ]
    original_key = rows(first.where("customer_id = 1"), "valid_from")[0]["customer_key"]
    assert updated[0]["customer_key"] == original_key


def test_dim_customer_delete_closes_history(spark: SparkSession, raw_rows: RawRows) -> None:
    deleted_at_ms = int(ts("2026-04-01T12:00:00").timestamp() * 1000)
    changes = t.transform_decode(
        raw_rows(
            [
                customer("c", 1, 1, "FR", "2026-01-01T00:00:00Z"),
                customer("d", 2, 1, "FR", "2026-01-01T00:00:00Z", ts_ms=deleted_at_ms),
            ]
        ),
        "customers",
    )
    (only,) = rows(t.transform_dim_customer(_empty_dim(spark), changes), "valid_from")
    assert only["is_current"] is False
    assert only["valid_to"] == datetime(2026, 4, 1, 12)

    # A later, unrelated run that re-reads the stored rows keeps the customer closed.
    stored = spark.createDataFrame([tuple(only.values())], _empty_dim(spark).schema)
    again = rows(t.transform_dim_customer(stored, changes.limit(0)), "valid_from")
    assert again == []  # untouched customers are not returned, so nothing is rewritten


def test_dim_customer_is_idempotent(spark: SparkSession, raw_rows: RawRows) -> None:
    changes = t.transform_decode(
        raw_rows(
            [
                customer("c", 1, 1, "FR", "2026-01-01T00:00:00Z"),
                customer("u", 2, 1, "DE", "2026-02-01T00:00:00Z"),
            ]
        ),
        "customers",
    )
    once = t.transform_dim_customer(_empty_dim(spark), changes)
    stored = spark.createDataFrame(once.collect(), once.schema)
    twice = t.transform_dim_customer(stored, changes)
    assert rows(once, "valid_from") == rows(twice, "valid_from")


def test_dim_product_keeps_live_latest(raw_rows: RawRows) -> None:
    product: dict[str, Any] = {
        "sku": "S",
        "name": "N",
        "category": "C",
        "brand": "B",
        "stock": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    latest = t.transform_latest_state(
        t.transform_decode(
            raw_rows(
                [
                    event("c", 1, id=1, price="10.00", **product),
                    event("u", 2, id=1, price="8.00", **product),
                    event("c", 3, id=2, price="1.00", **product),
                    event("d", 4, id=2, price="1.00", **product),
                ]
            ),
            "products",
        )
    )
    assert rows(t.transform_dim_product(latest), "product_id") == [
        {
            "product_id": 1,
            "sku": "S",
            "name": "N",
            "category": "C",
            "brand": "B",
            "price": Decimal("8.00"),
        }
    ]


def test_dim_date(spark: SparkSession) -> None:
    days = spark.createDataFrame(
        [(ts("2026-11-21T23:59:00"),), (ts("2026-11-21T01:00:00"),), (ts("2026-11-23T00:00:00"),)],
        "date timestamp",
    )
    dim = rows(t.transform_dim_date(days), "date_key")
    assert [(r["date_key"], r["day_of_week"], r["is_weekend"]) for r in dim] == [
        (20261121, 6, True),  # a Saturday
        (20261123, 1, False),
    ]
    assert dim[0]["date"] == date(2026, 11, 21) and dim[0]["quarter"] == 4


def test_fact_order_line_picks_customer_version_in_effect(spark: SparkSession) -> None:
    items = spark.createDataFrame(
        [
            (1, 10, 100, 2, Decimal("2.50")),
            (2, 11, 100, 1, Decimal("4.00")),
            (3, 99, 100, 1, Decimal("1.00")),
        ],
        "id bigint, order_id bigint, product_id bigint, quantity int, unit_price decimal(10,2)",
    )
    orders = spark.createDataFrame(
        [
            (10, 1, "paid", ts("2026-01-15T00:00:00")),
            (11, 1, "cancelled", ts("2026-03-01T00:00:00")),
        ],
        "id bigint, customer_id bigint, status string, created_at timestamp",
    )
    dim = spark.createDataFrame(
        [
            (111, 1, "a", "A", "FR", ts("2026-01-01T00:00:00"), ts("2026-02-01T00:00:00"), False),
            (222, 1, "a", "A", "DE", ts("2026-02-01T00:00:00"), None, True),
        ],
        _empty_dim(spark).schema,
    )
    facts = rows(t.transform_fact_order_line(items, orders, dim), "order_item_id")
    # Item 3's order is unknown: left for a later run.
    assert [(r["order_item_id"], r["customer_key"], r["date_key"]) for r in facts] == [
        (1, 111, 20260115),
        (2, 222, 20260301),
    ]
    assert facts[0]["line_amount"] == Decimal("5.00")
    assert facts[1]["order_status"] == "cancelled"
    assert list(facts[0]) == t.FACT_COLUMNS


def test_fact_order_line_before_first_version_takes_earliest(spark: SparkSession) -> None:
    items = spark.createDataFrame(
        [(1, 10, 100, 1, Decimal("1.00"))],
        "id bigint, order_id bigint, product_id bigint, quantity int, unit_price decimal(10,2)",
    )
    orders = spark.createDataFrame(
        [(10, 1, "paid", ts("2025-12-31T23:59:59"))],
        "id bigint, customer_id bigint, status string, created_at timestamp",
    )
    dim = spark.createDataFrame(
        [(111, 1, "a", "A", "FR", ts("2026-01-01T00:00:00"), None, True)],
        _empty_dim(spark).schema,
    )
    (fact,) = rows(t.transform_fact_order_line(items, orders, dim), "order_item_id")
    assert fact["customer_key"] == 111


def test_daily_sales_excludes_cancelled(spark: SparkSession) -> None:
    facts = spark.createDataFrame(
        [
            (1, 10, 20260101, "paid", 2, Decimal("5.00")),
            (2, 10, 20260101, "paid", 1, Decimal("4.00")),
            (3, 11, 20260101, "cancelled", 9, Decimal("90.00")),
            (4, 12, 20260102, "pending", 1, Decimal("1.50")),
        ],
        "order_item_id bigint, order_id bigint, date_key int, order_status string, "
        "quantity int, line_amount decimal(12,2)",
    )
    assert rows(t.transform_daily_sales(facts), "date_key") == [
        {
            "date_key": 20260101,
            "orders": 1,
            "order_lines": 2,
            "units": 3,
            "revenue": Decimal("9.00"),
        },
        {
            "date_key": 20260102,
            "orders": 1,
            "order_lines": 1,
            "units": 1,
            "revenue": Decimal("1.50"),
        },
    ]
