"""The mirror's pure transformations on tiny inline change events."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from batch import mirror_transforms as mt
from headwater.pipelines.declarations import MirrorDeclaration
from headwater.pipelines.types import PLACEHOLDER
from tests.unit.batch.conftest import RawRows, event

pytestmark = pytest.mark.spark

EVERY_TYPE = {
    "id": "bigint",
    "t": "text",
    "u": "uuid",
    "s": "smallint",
    "i": "integer",
    "n": "numeric(10,2)",
    "free": "numeric",
    "r": "real",
    "d": "double precision",
    "b": "boolean",
    "tz": "timestamptz",
    "ts": "timestamp",
    "ts3": "timestamp(3)",
    "day": "date",
    "tod": "time",
    "j": "jsonb",
    "raw": "bytea",
    "tags": "text[]",
    "docs": "jsonb[]",
    "blobs": "bytea[]",
    "prices": "numeric(5,1)[]",
}


def shape_of(columns: dict[str, str], keys: str | list[str] = "id", **extra: Any) -> mt.MirrorShape:
    declaration = MirrorDeclaration.model_validate(
        {
            "name": "things",
            "source": {"connector": "shop-source", "table": "public.things"},
            "id": keys,
            "columns": columns,
            "path": Path("mirrors/things.yaml"),
            **extra,
        }
    )
    return mt.MirrorShape.of(declaration)


SIMPLE = shape_of({"id": "bigint", "name": "text", "price": "numeric(10,2)"})


def decoded(shape: mt.MirrorShape, raw: DataFrame) -> list[dict[str, Any]]:
    return [r.asDict() for r in raw.transform(mt.transform_decode, shape).collect()]


def test_every_type_is_read_through_the_type_table(spark: SparkSession, raw_rows: RawRows) -> None:
    shape = shape_of(EVERY_TYPE)
    full = event(
        "c",
        10,
        id=1,
        t="héllo",
        u="6F9619FF-8B86-D011-B42D-00C04FC964FF",
        s=-3,
        i=70000,
        n="12.30",
        free="3.14159",
        r=1.5,
        d="NaN",
        b=True,
        tz="2026-11-02T10:00:00.123456Z",
        ts=1_700_000_000_123_456,
        ts3=1_700_000_000_123,
        day=20_000,
        tod=3_723_000_001,
        j='{"b": [1, 2], "a": null}',
        raw=base64.b64encode(b"\x00\xffbin").decode(),
        tags=["a", None, "c"],
        docs=['{"x": 1}', "[true]"],
        blobs=[base64.b64encode(b"\x01").decode()],
        prices=["1.5", None],
    )
    empty: dict[str, Any] = {name: None for name in EVERY_TYPE if name != "id"}
    nulls = event("c", 11, id=2, **empty)
    rows = {r["id"]: r for r in decoded(shape, raw_rows([full, nulls]))}
    one = rows[1]
    assert one["_errors"] is None and one["_unchanged"] is None
    assert one["t"] == "héllo"
    assert one["u"] == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert (one["s"], one["i"]) == (-3, 70000)
    assert one["n"] == Decimal("12.30")
    assert one["free"] == Decimal("3.1415900000")
    assert one["r"] == 1.5 and one["d"] != one["d"]  # NaN
    assert one["b"] is True
    assert one["tz"] == datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC).replace(tzinfo=None)
    assert one["ts"] == datetime(2023, 11, 14, 22, 13, 20, 123456)
    assert one["ts3"] == datetime(2023, 11, 14, 22, 13, 20, 123000)
    assert one["day"] == date(2024, 10, 4)
    assert one["tod"] == "01:02:03.000001"
    assert json.loads(one["j"]) == {"a": None, "b": [1, 2]}
    assert one["raw"] == bytearray(b"\x00\xffbin")
    assert one["tags"] == ["a", None, "c"]
    assert [json.loads(x) for x in one["docs"]] == [{"x": 1}, [True]]
    assert one["blobs"] == [bytearray(b"\x01")]
    assert one["prices"] == [Decimal("1.5"), None]
    assert (one["_op"], one["_lsn"], one["_deleted"]) == ("c", 10, False)
    assert one["_ts"] == datetime(2023, 11, 14, 22, 13, 20)
    two = rows[2]
    assert two["_errors"] is None
    assert all(two[name] is None for name in EVERY_TYPE if name != "id")


def test_values_that_do_not_fit_become_errors_not_failures(raw_rows: RawRows) -> None:
    shape = shape_of({"id": "bigint", "price": "numeric(4,2)", "n": "integer", "j": "jsonb"})
    rows = decoded(
        shape,
        raw_rows(
            [
                event("c", 1, id=1, price="123.45", n=1, j="{}"),  # too many digits
                event("c", 2, id=2, price="1.234", n=1, j="{}"),  # too many decimals
                event("c", 3, id=3, price="1.00", n="seven", j="{nope"),
            ]
        ),
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id[1]["price"] is None and by_id[1]["_errors"][0].startswith("price: ")
    assert by_id[2]["_errors"][0].startswith("price: ")
    assert [e.split(":")[0] for e in by_id[3]["_errors"]] == ["n", "j"]
    changes = raw_rows([event("c", 1, id=1, price="123.45", n=1, j="{}")]).transform(
        mt.transform_decode, shape
    )
    assert changes.transform(mt.transform_rejects, shape).count() == 1


def test_tombstones_are_dropped_and_deletes_marked(raw_rows: RawRows) -> None:
    rows = decoded(
        SIMPLE,
        raw_rows(
            [
                event("c", 1, id=1, name="a", price="1.00"),
                event("d", 2, id=1, name="a", price="1.00"),
                None,
            ]
        ),
    )
    assert [(r["_op"], r["_deleted"]) for r in rows] == [("c", False), ("d", True)]


def test_records_that_are_no_change_event_are_set_aside(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [
            (b"k", b"{not json", "t", 0, 0),
            (b"k", b'{"__op": "u"}', "t", 0, 1),
            (b"k", b"[1]", "t", 0, 2),
            (b"k", json.dumps(event("c", 1, id=1, name="a", price="1.00")).encode(), "t", 0, 3),
        ],
        "key binary, value binary, topic string, partition int, offset long",
    )
    changes = raw.transform(mt.transform_decode, SIMPLE)
    unreadable = changes.transform(mt.transform_unreadable).collect()
    assert [(r["_partition"], r["_offset"]) for r in unreadable] == [(0, 0), (0, 1), (0, 2)]
    (readable,) = changes.transform(mt.transform_readable).collect()
    assert readable["id"] == 1 and readable["_errors"] is None


def test_a_change_without_its_key_is_rejected(raw_rows: RawRows) -> None:
    changes = raw_rows([event("c", 1, name="a", price="1.00")]).transform(
        mt.transform_decode, SIMPLE
    )
    assert changes.transform(mt.transform_latest, SIMPLE).count() == 0
    (row,) = changes.transform(mt.transform_rejects, SIMPLE).collect()
    assert row["id"] is None


def latest(shape: mt.MirrorShape, raw: DataFrame, lsn: int | None = None) -> DataFrame:
    return (
        raw.transform(mt.transform_decode, shape)
        .transform(mt.transform_until, lsn)
        .transform(mt.transform_fill_unchanged, shape)
        .transform(mt.transform_latest, shape)
    )


def test_latest_change_per_key_wins_by_lsn_not_by_arrival(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event("c", 10, id=1, name="new", price="2.00"),
            # Arrives later with an older LSN (a redelivery): it must not win.
            event("u", 5, id=1, name="old", price="1.00"),
            event("c", 7, id=2, name="b", price="1.00"),
            event("c", 7, id=2, name="b", price="1.00"),  # a duplicate
        ]
    )
    rows = {
        r["id"]: r for r in latest(SIMPLE, raw).transform(mt.transform_upserts, SIMPLE).collect()
    }
    assert rows[1]["name"] == "new" and rows[1]["_lsn"] == 10
    assert rows[2]["name"] == "b"
    assert len(rows) == 2


def test_deletes_leave_the_current_rows_and_come_back_as_keys(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event("c", 1, id=1, name="a", price="1.00"),
            event("d", 2, id=1, name="a", price="1.00"),
            None,
            event("c", 3, id=2, name="b", price="1.00"),
            event("d", 4, id=2, name="b", price="1.00"),
            None,
            event("c", 5, id=2, name="b again", price="1.00"),  # re-inserted after its delete
        ]
    )
    state = latest(SIMPLE, raw)
    upserts = state.transform(mt.transform_upserts, SIMPLE).collect()
    deletes = state.transform(mt.transform_deletes, SIMPLE).collect()
    assert [(r["id"], r["name"]) for r in upserts] == [(2, "b again")]
    assert [(r["id"], r["_lsn"]) for r in deletes] == [(1, 2)]


def test_changes_past_the_consistent_point_wait_for_the_next_run(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event("c", 1, id=1, name="a", price="1.00"),
            event("u", 9, id=1, name="later", price="1.00"),
            event("c", 9, id=2, name="later", price="1.00"),
        ]
    )
    rows = latest(SIMPLE, raw, lsn=5).transform(mt.transform_upserts, SIMPLE).collect()
    assert [(r["id"], r["name"]) for r in rows] == [(1, "a")]
    changes = raw.transform(mt.transform_decode, SIMPLE)
    assert mt.next_offsets(changes, {0: 3}, 5) == {0: 1}
    assert mt.next_offsets(changes, {0: 3}, 9) == {0: 3}
    assert mt.next_offsets(changes, {0: 3}, None) == {0: 3}


def test_composite_keys(raw_rows: RawRows) -> None:
    shape = shape_of({"a": "integer", "b": "text", "v": "text"}, ["a", "b"])
    raw = raw_rows(
        [
            event("c", 1, a=1, b="x", v="first"),
            event("u", 2, a=1, b="x", v="second"),
            event("c", 3, a=1, b="y", v="other"),
        ]
    )
    rows = latest(shape, raw).transform(mt.transform_upserts, shape).collect()
    assert sorted((r["a"], r["b"], r["v"]) for r in rows) == [(1, "x", "second"), (1, "y", "other")]


def test_toast_placeholder_keeps_the_previous_value(raw_rows: RawRows) -> None:
    shape = shape_of(
        {"id": "bigint", "body": "text", "doc": "jsonb", "blob": "bytea", "tags": "text[]"}
    )
    placeholder_b64 = base64.b64encode(PLACEHOLDER.encode()).decode()
    raw = raw_rows(
        [
            event("c", 1, id=1, body="long", doc='{"a": 1}', blob="AQ==", tags=["x"]),
            event(
                "u",
                2,
                id=1,
                body=PLACEHOLDER,
                doc=PLACEHOLDER,
                blob=placeholder_b64,
                tags=[PLACEHOLDER],
            ),
            # Only the update is in this batch: the load keeps the warehouse's values.
            event("u", 3, id=2, body=PLACEHOLDER, doc='{"b": 2}', blob=None, tags=None),
        ]
    )
    upserts = latest(shape, raw).transform(mt.transform_upserts, shape).collect()
    rows = {r["id"]: r for r in upserts}
    one = rows[1]
    assert (one["body"], json.loads(one["doc"]), one["blob"], one["tags"]) == (
        "long",
        {"a": 1},
        bytearray(b"\x01"),
        ["x"],
    )
    assert one["_unchanged"] is None and one["_lsn"] == 2
    two = rows[2]
    assert two["body"] is None and two["_unchanged"] == ["body"]
    assert json.loads(two["doc"]) == {"b": 2}


def history(shape: mt.MirrorShape, raw: DataFrame) -> list[dict[str, Any]]:
    versions = (
        raw.transform(mt.transform_decode, shape)
        .transform(mt.transform_fill_unchanged, shape)
        .transform(mt.transform_history, shape)
    )
    return sorted((r.asDict() for r in versions.collect()), key=lambda r: (r["id"], r["_lsn"]))


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def test_history_has_one_version_per_change_and_closes_on_delete(raw_rows: RawRows) -> None:
    raw = raw_rows(
        [
            event("r", 1, ts_ms=1_000, id=1, name="a", price="1.00"),
            event("u", 2, ts_ms=2_000, id=1, name="b", price="1.00"),
            event("u", 2, ts_ms=2_000, id=1, name="b", price="1.00"),  # redelivered
            event("u", 3, ts_ms=3_000, id=1, name="c", price="1.00"),
            event("c", 4, ts_ms=1_500, id=2, name="x", price="1.00"),
            event("d", 5, ts_ms=4_000, id=2, name="x", price="1.00"),
            None,
        ]
    )
    rows = history(SIMPLE, raw)
    assert [
        (r["id"], r["name"], r["valid_from"], r["valid_to"], r["is_current"]) for r in rows
    ] == [
        (1, "a", at(1_000), at(2_000), False),
        (1, "b", at(2_000), at(3_000), False),
        (1, "c", at(3_000), None, True),
        (2, "x", at(1_500), at(4_000), False),
    ]


def test_history_is_the_same_whatever_order_changes_arrive_in(raw_rows: RawRows) -> None:
    changes: list[dict[str, Any] | None] = [
        event("c", 1, ts_ms=1_000, id=1, name="a", price="1.00"),
        event("u", 2, ts_ms=2_000, id=1, name="b", price="1.00"),
    ]
    assert history(SIMPLE, raw_rows(changes)) == history(SIMPLE, raw_rows(changes[::-1]))


def test_reserved_column_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        shape_of({"id": "bigint", "_lsn": "bigint"})


def test_spark_values_of_time_and_json() -> None:
    from headwater.pipelines.types import column_type

    assert mt.spark_value(column_type("time"), datetime(2026, 1, 1, 1, 2, 3).time()) == "01:02:03"
    assert mt.spark_value(column_type("jsonb"), {"b": 1, "a": [None]}) == '{"a":[null],"b":1}'
    assert mt.spark_value(column_type("numeric(3,1)"), Decimal("12.5")) == Decimal("12.5")
    with pytest.raises(ValueError, match="does not fit"):
        mt.spark_value(column_type("numeric(3,1)"), Decimal("123.5"))
