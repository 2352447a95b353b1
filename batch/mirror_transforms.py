"""Pure transformations of a declared mirror: one table's change events in, warehouse rows out.

No I/O here. `decode_change` turns one Kafka record into a row typed by the declaration, with
every value read through the type table (`headwater.pipelines.types`); a value that does not fit
its type becomes null and an entry of `_errors`, so the quality suite reports it with the rest
of the batch instead of the job failing on the first bad record. The DataFrame functions chain
with `df.transform`, like `batch.transforms`; `_`-prefixed columns are change-event metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from batch.transforms import transform_latest_state
from headwater.pipelines.declarations import MirrorDeclaration
from headwater.pipelines.types import UNAVAILABLE, ColumnType, TypeError_, column_type

UNREADABLE = "value: not a change event (a JSON object with __lsn)"
# Metadata every decoded change carries after the declared columns, in this order.
META_SCHEMA = (
    "_op string, _lsn long, _ts timestamp, _deleted boolean, _partition int, _offset long, "
    "_unchanged array<string>, _errors array<string>"
)
META_COLUMNS = tuple(part.split()[0] for part in META_SCHEMA.split(", "))


@dataclass(frozen=True)
class MirrorShape:
    """What the transformations need of a declaration: its columns, their types and its key."""

    # (column, declared type) pairs: plain strings, so a shape pickles to Spark's workers
    # and each worker reads values with its own type table (`UNAVAILABLE` is compared by
    # identity, which a pickled copy would not keep).
    types: tuple[tuple[str, str], ...]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, declaration: MirrorDeclaration) -> MirrorShape:
        clash = [n for n in declaration.columns if n.startswith("_")]
        if clash:
            raise ValueError(
                f"{declaration.path}: columns: names starting with '_' are reserved for the "
                f"change metadata of the mirror job: {', '.join(clash)}"
            )
        return cls(tuple(declaration.columns.items()), tuple(declaration.id))

    @property
    def columns(self) -> tuple[tuple[str, ColumnType], ...]:
        return tuple((n, column_type(t)) for n, t in self.types)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.types)

    @property
    def spark_schema(self) -> str:
        """The DDL of a decoded change: the declared columns as Spark types, then metadata."""
        declared = ", ".join(f"`{n}` {kind.spark}" for n, kind in self.columns)
        return f"{declared}, {META_SCHEMA}"


# --- values -----------------------------------------------------------------------------------


def _fits_decimal(kind: ColumnType, value: Decimal) -> Decimal:
    # `.spark` is decimal(p,s): the column Spark holds, and so the bounds a value must fit.
    inner = kind.spark.removeprefix("decimal(").removesuffix(")")
    precision, scale = (int(x) for x in inner.split(","))
    if not value.is_finite():
        raise TypeError_(f"{kind.name}: cannot store {value} in the warehouse")
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    # An unconstrained `numeric` is held at Spark's scale; a declared scale must already fit.
    if quantized != value and "(" in kind.name:
        raise TypeError_(f"{kind.name}: {value} has more than {scale} decimal places")
    if quantized and quantized.adjusted() + 1 > precision - scale:
        raise TypeError_(f"{kind.name}: {value} does not fit {precision} digits")
    return quantized


def spark_value(kind: ColumnType, value: Any) -> Any:
    """A value read by `kind.from_change` as the Python value Spark takes for `kind.spark`.

    Spark has no JSON or time-of-day type: `jsonb` is kept as its JSON text and `time` as
    ISO text, which PostgreSQL reads back into the declared warehouse type.
    """
    if value is None or value is UNAVAILABLE:
        return value
    if kind.element is not None:
        return [spark_value(kind.element, v) for v in value]
    base = kind.warehouse.split("(")[0]
    if base == "jsonb":
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if base == "time":
        return value.isoformat()
    if kind.spark.startswith("decimal("):
        return _fits_decimal(kind, value)
    return value


def decode_change(
    shape: MirrorShape,
    value: bytes | None,
    partition: int,
    offset: int,
    columns: Sequence[tuple[str, ColumnType]] | None = None,
) -> tuple[Any, ...] | None:
    """One Kafka record as a row of `shape.spark_schema`; None for a tombstone.

    A TOASTed column an update left unchanged is null here and named in `_unchanged` (the load
    keeps the value it has); a column missing from the change (it did not exist yet) is null.
    """
    if value is None:
        return None
    errors: list[str] = []
    try:
        row = orjson.loads(value)
    except orjson.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or "__lsn" not in row:
        errors.append(UNREADABLE)
        row = {}
    deleted = row.get("__op") == "d" or str(row.get("__deleted", "")).lower() == "true"
    values: list[Any] = []
    unchanged: list[str] = []
    for name, kind in columns or shape.columns:
        raw = row.get(name)
        try:
            converted = spark_value(kind, None if raw is None else kind.from_change(raw))
        except (TypeError_, ValueError, ArithmeticError) as exc:
            # A delete only needs its key: the rest of an old row is not loaded.
            if not deleted or name in shape.keys:
                errors.append(f"{name}: {exc}")
            converted = None
        if converted is UNAVAILABLE:
            unchanged.append(name)
            converted = None
        values.append(converted)
    lsn = row.get("__lsn")
    if row and (isinstance(lsn, bool) or not isinstance(lsn, int)):
        errors.append(f"__lsn: expected the change's LSN, got {lsn!r}")
        lsn = None
    ts_ms = row.get("__source_ts_ms")
    ts = (
        datetime.fromtimestamp(ts_ms / 1000, UTC)
        if isinstance(ts_ms, int) and not isinstance(ts_ms, bool)
        else None
    )
    return (
        *values,
        row.get("__op"),
        lsn,
        ts,
        deleted,
        partition,
        offset,
        unchanged or None,
        errors or None,
    )


def decode_records(
    shape: MirrorShape, records: Iterable[tuple[bytes | None, int, int]]
) -> Iterator[tuple[Any, ...]]:
    """`decode_change` over (value, partition, offset) records, tombstones left out."""
    columns = shape.columns
    for value, partition, offset in records:
        decoded = decode_change(shape, value, partition, offset, columns)
        if decoded is not None:
            yield decoded


# --- DataFrames ---------------------------------------------------------------------------------


def transform_decode(raw: DataFrame, shape: MirrorShape) -> DataFrame:
    """Kafka rows (value, partition, offset) to typed change events, through the type table."""
    records = raw.select("value", "partition", "offset").rdd.map(tuple)
    decoded = records.mapPartitions(lambda part: decode_records(shape, part))
    return raw.sparkSession.createDataFrame(decoded, shape.spark_schema, verifySchema=False)


def transform_until(changes: DataFrame, lsn: int | None) -> DataFrame:
    """The changes committed up to `lsn` (every change when None); rows without an LSN stay,
    so that their errors reach the quality suite."""
    if lsn is None:
        return changes
    return changes.where(F.col("_lsn").isNull() | (F.col("_lsn") <= F.lit(lsn)))


def _ordered(keys: Sequence[str]) -> WindowSpec:
    return Window.partitionBy(*keys).orderBy(
        F.col("_lsn").asc_nulls_first(), F.col("_offset").asc()
    )


def transform_fill_unchanged(changes: DataFrame, shape: MirrorShape) -> DataFrame:
    """A TOASTed column an update did not change takes the key's previous value in the batch.

    What is still unavailable (no earlier change of the key in this batch) stays listed in
    `_unchanged`, and the load keeps the warehouse's value for it.
    """
    earlier = _ordered(shape.keys).rowsBetween(Window.unboundedPreceding, -1)
    # Keys are never TOASTed: they partition the window.
    names = [n for n in shape.names if n not in shape.keys]

    def flagged(name: str) -> Column:
        return F.coalesce(F.array_contains("_unchanged", name), F.lit(False))

    previous = {
        f"_prev_{n}": F.last(F.when(~flagged(n), F.struct(F.col(n).alias("v"))), True).over(earlier)
        for n in names
    }
    out = changes.withColumns(previous)
    still = F.filter(
        F.array(*[F.when(flagged(n) & F.col(f"_prev_{n}").isNull(), F.lit(n)) for n in names]),
        lambda c: c.isNotNull(),
    )
    filled = {n: F.when(flagged(n), F.col(f"_prev_{n}.v")).otherwise(F.col(n)) for n in names}
    filled["_unchanged"] = F.when(F.size(still) > 0, still)
    return out.withColumns(filled).select(*changes.columns)


def transform_latest(changes: DataFrame, shape: MirrorShape) -> DataFrame:
    """One row per key: its newest change by LSN (then offset), deletes included."""
    return transform_latest_state(changes.where(_keys_present(shape)), list(shape.keys))


def _keys_present(shape: MirrorShape) -> Column:
    present = F.lit(True)
    for key in shape.keys:
        present = present & F.col(key).isNotNull()
    return present


def transform_upserts(latest: DataFrame, shape: MirrorShape) -> DataFrame:
    """The current-table rows of the keys whose newest change is not a delete."""
    return latest.where(~F.col("_deleted")).select(*shape.names, *META_COLUMNS)


def transform_deletes(latest: DataFrame, shape: MirrorShape) -> DataFrame:
    """The keys whose newest change is a delete, with its LSN and commit time."""
    return latest.where(F.col("_deleted")).select(*shape.keys, "_lsn", "_ts")


def transform_unreadable(changes: DataFrame) -> DataFrame:
    """Records that are no change event at all (not JSON, no `__lsn`): no row of the table.

    The stream workers dead-letter such records; the mirror skips them and says where they are.
    """
    return changes.where(F.array_contains("_errors", UNREADABLE)).select("_partition", "_offset")


def transform_readable(changes: DataFrame) -> DataFrame:
    return changes.where(F.col("_errors").isNull() | ~F.array_contains("_errors", UNREADABLE))


def transform_rejects(changes: DataFrame, shape: MirrorShape) -> DataFrame:
    """Changes with a value that does not fit its type, or without a key: the suite fails them."""
    return changes.where(F.col("_errors").isNotNull() | ~_keys_present(shape))


HISTORY_META = ("valid_from", "valid_to", "is_current")


def transform_history(changes: DataFrame, shape: MirrorShape) -> DataFrame:
    """SCD2 versions from every change of the batch: one per (key, LSN), replays included once.

    A version is valid from its change's commit time until the key's next change (an update
    opens the next version, a delete only closes this one); the last one is current unless a
    delete followed. The load recomputes the ends over stored and new versions together.
    """
    keyed = changes.where(_keys_present(shape) & F.col("_lsn").isNotNull())
    # The same change read twice (a replay, a redelivery) is one version.
    once = Window.partitionBy(*shape.keys, "_lsn").orderBy(F.col("_offset").desc())
    events = keyed.withColumn("_n", F.row_number().over(once)).where(F.col("_n") == 1).drop("_n")
    ordered = Window.partitionBy(*shape.keys).orderBy(F.col("_lsn").asc())
    return (
        events.withColumn("_next_ts", F.lead("_ts").over(ordered))
        .where(~F.col("_deleted"))
        .select(
            *shape.names,
            F.col("_ts").alias("valid_from"),
            F.col("_next_ts").alias("valid_to"),
            F.col("_next_ts").isNull().alias("is_current"),
            "_lsn",
            "_unchanged",
        )
    )


def next_offsets(changes: DataFrame, end: dict[int, int], lsn: int | None) -> dict[int, int]:
    """Where the next run starts per partition: the first change after `lsn`, else `end`.

    Changes past the consistent point are left for the next run, so the warehouse never holds
    a change the source count did not see yet.
    """
    if lsn is None:
        return dict(end)
    later = (
        changes.where(F.col("_lsn") > F.lit(lsn))
        .groupBy("_partition")
        .agg(F.min("_offset").alias("first"))
        .collect()
    )
    out = dict(end)
    for row in later:
        out[int(row["_partition"])] = min(int(row["first"]), out.get(int(row["_partition"]), 0))
    return out
