"""Pure transformations of the warehouse load: DataFrames of change events in, star schema out.

No I/O here: each function takes and returns DataFrames, so the unit tests feed inline rows and
the jobs chain them with `df.transform`. Column names prefixed `_` are change-event metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

# Columns of each source table with their warehouse type; the topics carry every value as JSON
# (numeric as strings, timestamps as ISO-8601 with Z), so decoding parses text then casts.
SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "id": "bigint",
        "email": "string",
        "full_name": "string",
        "country": "string",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
    "products": {
        "id": "bigint",
        "sku": "string",
        "name": "string",
        "category": "string",
        "brand": "string",
        "price": "decimal(10,2)",
        "stock": "int",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
    "orders": {
        "id": "bigint",
        "customer_id": "bigint",
        "status": "string",
        "total": "decimal(12,2)",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
    "order_items": {
        "id": "bigint",
        "order_id": "bigint",
        "product_id": "bigint",
        "quantity": "int",
        "unit_price": "decimal(10,2)",
        "created_at": "timestamp",
    },
}
_META = ("__op", "__lsn", "__source_ts_ms", "__table", "__deleted")
FAR_PAST = "1970-01-01 00:00:00"


def _value_schema(table: str) -> StructType:
    # Every field as text: Spark's JSON reader keeps a number or boolean token's text for a
    # string field, so one schema accepts `"__deleted": "true"` and `"__deleted": true` alike.
    names = [*SOURCE_COLUMNS[table], *_META]
    return StructType([StructField(name, StringType()) for name in names])


def _ts(column: Column) -> Column:
    return F.to_timestamp(column)


def transform_decode(raw: DataFrame, table: str) -> DataFrame:
    """Kafka rows (key, value, partition, offset) to typed change events; tombstones dropped.

    A value that does not cast (a non-numeric price, say) becomes null rather than failing the
    job, so the quality suite reports it with the rest of the batch.
    """
    parsed = raw.where(F.col("value").isNotNull()).select(
        F.from_json(F.col("value").cast("string"), _value_schema(table)).alias("v"),
        F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"),
    )
    typed = [
        (
            _ts(F.col(f"v.{name}")) if kind == "timestamp" else F.col(f"v.{name}").try_cast(kind)
        ).alias(name)
        for name, kind in SOURCE_COLUMNS[table].items()
    ]
    op = F.col("v.__op")
    deleted = (op == F.lit("d")) | (F.lower(F.col("v.__deleted")) == F.lit("true"))
    return parsed.where(F.col("v").isNotNull()).select(
        *typed,
        op.alias("_op"),
        F.col("v.__lsn").try_cast("bigint").alias("_lsn"),
        F.timestamp_millis(F.col("v.__source_ts_ms").try_cast("bigint")).alias("_ts"),
        deleted.alias("_deleted"),
        "_partition",
        "_offset",
    )


def _event_order() -> list[Column]:
    # Source commit order first; within one LSN (or for LSN-less events) the topic offset,
    # which is ordered per key because a key always lands on one partition.
    return [F.col("_lsn").desc_nulls_last(), F.col("_offset").desc()]


def transform_latest_state(changes: DataFrame, key: str | Sequence[str] = "id") -> DataFrame:
    """One row per key (a column, or several for a composite key): its last change, deletes
    included (`_deleted` says which)."""
    keys = [key] if isinstance(key, str) else list(key)
    window = Window.partitionBy(*keys).orderBy(*_event_order())
    return (
        changes.withColumn("_rank", F.row_number().over(window))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def transform_live(latest: DataFrame) -> DataFrame:
    """The keys that still exist, without the event metadata."""
    return latest.where(~F.col("_deleted")).drop(*[c for c in latest.columns if c.startswith("_")])


def transform_deleted_keys(latest: DataFrame, key: str = "id") -> DataFrame:
    return latest.where(F.col("_deleted")).select(key)


def customer_key(customer_id: Column, valid_from: Column) -> Column:
    """A deterministic surrogate key of one customer version, so reloads reproduce it."""
    return F.xxhash64(customer_id, valid_from.cast("string"))


DIM_CUSTOMER_COLUMNS = [
    "customer_key",
    "customer_id",
    "email",
    "full_name",
    "country",
    "valid_from",
    "valid_to",
    "is_current",
]
_TRACKED = ["email", "full_name", "country"]


def transform_dim_customer(current: DataFrame, changes: DataFrame) -> DataFrame:
    """Type 2 history of every customer with a change: all its versions, old and new.

    `current` is the dimension as stored (any customers); `changes` the decoded customer events.
    A version starts at the row's `updated_at`; an update that leaves the tracked attributes as
    they were opens no version; a delete closes the last version at the delete's commit time.
    The result replaces the stored rows of the customers it contains.
    """
    touched = changes.select(F.col("id").alias("customer_id")).distinct()
    stored = current.join(touched, "customer_id", "left_semi")
    incoming = changes.where(~F.col("_deleted")).select(
        F.col("id").alias("customer_id"),
        *_TRACKED,
        F.col("updated_at").alias("valid_from"),
        F.col("_lsn"),
        F.col("_offset"),
    )
    # The latest event per (customer, valid_from) wins; a stored version yields to a new one.
    candidates = incoming.withColumn("_prio", F.lit(1)).unionByName(
        stored.select(
            "customer_id",
            *_TRACKED,
            "valid_from",
            F.lit(None).cast("bigint").alias("_lsn"),
            F.lit(None).cast("bigint").alias("_offset"),
            F.lit(0).alias("_prio"),
        )
    )
    same_start = Window.partitionBy("customer_id", "valid_from").orderBy(
        F.col("_prio").desc(), F.col("_lsn").desc_nulls_last(), F.col("_offset").desc_nulls_last()
    )
    versions = (
        candidates.withColumn("_rank", F.row_number().over(same_start))
        .where(F.col("_rank") == 1)
        .drop("_rank", "_prio", "_lsn", "_offset")
    )
    by_start = Window.partitionBy("customer_id").orderBy("valid_from")
    previous = F.struct(*[F.lag(c).over(by_start).alias(c) for c in _TRACKED])
    versions = (
        versions.withColumn("_first", F.lag("valid_from").over(by_start).isNull())
        .withColumn("_same", previous.eqNullSafe(F.struct(*[F.col(c) for c in _TRACKED])))
        .where(F.col("_first") | ~F.col("_same"))
        .drop("_first", "_same")
    )
    # When a customer's last event is a delete, every version ends by then.
    last_event = transform_latest_state(changes)
    deletes = last_event.where(F.col("_deleted")).select(
        F.col("id").alias("customer_id"), F.col("_ts").alias("_deleted_at")
    )
    stored_end = (
        stored.where(~F.col("is_current"))
        .groupBy("customer_id")
        .agg(F.max("valid_to").alias("_stored_end"), F.max("valid_from").alias("_stored_last"))
    )
    # The closing time of a customer deleted in an earlier run survives unless a newer version
    # came in after it.
    window_all = Window.partitionBy("customer_id")
    result = (
        versions.join(deletes, "customer_id", "left")
        .join(stored_end, "customer_id", "left")
        .withColumn("_next", F.lead("valid_from").over(by_start))
        .withColumn("_latest", F.max("valid_from").over(window_all))
        .withColumn(
            "_closed_at",
            F.coalesce(
                "_deleted_at",
                F.when(F.col("_latest") <= F.col("_stored_last"), F.col("_stored_end")),
            ),
        )
        .withColumn("valid_to", F.coalesce("_next", "_closed_at"))
        .withColumn("is_current", F.col("valid_to").isNull())
        .withColumn("customer_key", customer_key(F.col("customer_id"), F.col("valid_from")))
    )
    return result.select(*DIM_CUSTOMER_COLUMNS)


DIM_PRODUCT_COLUMNS = ["product_id", "sku", "name", "category", "brand", "price"]


def transform_dim_product(latest: DataFrame) -> DataFrame:
    """Type 1: the current attributes of every live product that changed."""
    return transform_live(latest).select(F.col("id").alias("product_id"), *DIM_PRODUCT_COLUMNS[1:])


DIM_DATE_COLUMNS = [
    "date_key",
    "date",
    "year",
    "quarter",
    "month",
    "day",
    "day_of_week",
    "is_weekend",
]


def date_key(day: Column) -> Column:
    return F.date_format(day, "yyyyMMdd").cast("int")


def transform_dim_date(days: DataFrame, column: str = "date") -> DataFrame:
    """One calendar row per distinct day in `column` (ISO weekday, Monday = 1)."""
    day = F.col(column).cast("date")
    return (
        days.select(day.alias("date"))
        .where(F.col("date").isNotNull())
        .distinct()
        .select(
            date_key(F.col("date")).alias("date_key"),
            "date",
            F.year("date").alias("year"),
            F.quarter("date").alias("quarter"),
            F.month("date").alias("month"),
            F.dayofmonth("date").alias("day"),
            ((F.dayofweek("date") + 5) % 7 + 1).alias("day_of_week"),
            F.dayofweek("date").isin(1, 7).alias("is_weekend"),
        )
    )


FACT_COLUMNS = [
    "order_item_id",
    "order_id",
    "product_id",
    "customer_id",
    "customer_key",
    "date_key",
    "ordered_at",
    "order_status",
    "quantity",
    "unit_price",
    "line_amount",
]


def transform_fact_order_line(
    items: DataFrame, orders: DataFrame, customers: DataFrame
) -> DataFrame:
    """Order lines with their order's attributes and the customer version in effect then.

    `items` are live order items (id, order_id, product_id, quantity, unit_price), `orders`
    live orders (id, customer_id, status, created_at), `customers` dim_customer rows. An item
    whose order is not (yet) known is left out: its order's change arrives in a later run.
    A customer version is picked by `valid_from <= ordered_at < valid_to`; an order older than
    every version of its customer takes the first one.
    """
    lines = (
        items.alias("i")
        .join(orders.alias("o"), F.col("i.order_id") == F.col("o.id"), "inner")
        .select(
            F.col("i.id").alias("order_item_id"),
            F.col("i.order_id"),
            F.col("i.product_id"),
            F.col("o.customer_id"),
            F.col("o.created_at").alias("ordered_at"),
            F.col("o.status").alias("order_status"),
            F.col("i.quantity"),
            F.col("i.unit_price"),
        )
    )
    versions = customers.select(
        F.col("customer_id").alias("c_id"),
        "customer_key",
        "valid_from",
        F.coalesce("valid_to", F.lit("9999-12-31").cast("timestamp")).alias("_valid_to"),
    )
    joined = lines.join(versions, lines["customer_id"] == versions["c_id"], "left")
    in_effect = (F.col("valid_from") <= F.col("ordered_at")) & (
        F.col("ordered_at") < F.col("_valid_to")
    )
    # Rank: the version in effect, else the earliest; lines without a customer keep a null key.
    pick = Window.partitionBy("order_item_id").orderBy(
        F.when(in_effect, 0).otherwise(1), F.col("valid_from").asc_nulls_last()
    )
    return (
        joined.withColumn("_rank", F.row_number().over(pick))
        .where(F.col("_rank") == 1)
        .withColumn("date_key", date_key(F.col("ordered_at")))
        .withColumn("line_amount", (F.col("quantity") * F.col("unit_price")).cast("decimal(12,2)"))
        .select(*FACT_COLUMNS)
    )


AGG_COLUMNS = ["date_key", "orders", "order_lines", "units", "revenue"]


def transform_daily_sales(facts: DataFrame) -> DataFrame:
    """Sales per day from order lines; cancelled orders are no sales."""
    return (
        facts.where(F.col("order_status") != F.lit("cancelled"))
        .groupBy("date_key")
        .agg(
            F.countDistinct("order_id").alias("orders"),
            F.count(F.lit(1)).alias("order_lines"),
            F.sum("quantity").cast("bigint").alias("units"),
            F.sum("line_amount").cast("decimal(14,2)").alias("revenue"),
        )
        .select(*AGG_COLUMNS)
    )
