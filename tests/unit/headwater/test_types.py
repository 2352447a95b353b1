"""The type table: a datum read from a change event, from the table and from a document agrees."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from headwater.pipelines.types import (
    PLACEHOLDER,
    UNAVAILABLE,
    TypeError_,
    catalog_type,
    column_type,
    nullable,
)

# 2026-12-02T13:00:00.123456 UTC, computed apart from the module under test (calendar.timegm).
_SECONDS = 1_796_216_400
_NAIVE = datetime(2026, 12, 2, 13, 0, 0, 123456)
_UUID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"

# (declared type, Debezium JSON value, psycopg value of the same datum, expected canonical)
ROWS: list[tuple[str, Any, Any, str]] = [
    ("text", "héllo wörld", "héllo wörld", "héllo wörld"),
    ("varchar(20)", "short", "short", "short"),
    ("uuid", _UUID.upper(), uuid.UUID(_UUID), _UUID),
    ("smallint", -32768, -32768, "-32768"),
    ("integer", 2_147_483_647, 2_147_483_647, "2147483647"),
    ("bigint", 9_223_372_036_854_775_807, 9_223_372_036_854_775_807, "9223372036854775807"),
    ("numeric(10,2)", "12.50", Decimal("12.50"), "12.50"),
    ("numeric(10,2)", "-0.10", Decimal("-0.10"), "-0.10"),
    ("numeric(10,2)", "99999999.99", Decimal("99999999.99"), "99999999.99"),
    ("numeric", "3.14159", Decimal("3.14159"), "3.14159"),
    ("real", 1.5, 1.5, "1.5"),
    ("double precision", 0.1, 0.1, "0.1"),
    ("boolean", True, True, "true"),
    ("boolean", False, False, "false"),
    (
        "timestamptz",
        "2026-12-02T13:00:00.123456Z",
        datetime(2026, 12, 2, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        "2026-12-02T13:00:00.123456+00:00",
    ),
    (
        "timestamptz",
        "2026-12-02T13:00:00Z",
        datetime(2026, 12, 2, 13, 0, 0, tzinfo=UTC),
        "2026-12-02T13:00:00.000000+00:00",
    ),
    ("timestamp", _SECONDS * 1_000_000 + 123456, _NAIVE, "2026-12-02T13:00:00.123456"),
    (
        "timestamp(3)",
        _SECONDS * 1_000 + 123,
        _NAIVE.replace(microsecond=123000),
        "2026-12-02T13:00:00.123000",
    ),
    ("date", _SECONDS // 86_400, date(2026, 12, 2), "2026-12-02"),
    ("date", -1, date(1969, 12, 31), "1969-12-31"),
    ("time", 13 * 3_600_000_000 + 123456, time(13, 0, 0, 123456), "13:00:00.123456"),
    ("jsonb", '{"b": [1, 2], "a": "x"}', {"a": "x", "b": [1, 2]}, '{"a":"x","b":[1,2]}'),
    ("jsonb", '[1, "two", null]', [1, "two", None], '[1,"two",null]'),
    ("jsonb", '"plain"', "plain", '"plain"'),
    ("jsonb", "42", 42, "42"),
    ("bytea", "AP9odw==", b"\x00\xffhw", "AP9odw=="),
    ("bytea", "AP9odw==", memoryview(b"\x00\xffhw"), "AP9odw=="),
    ("text[]", ["a", None, "c"], ["a", None, "c"], '["a",null,"c"]'),
    ("integer[]", [1, 2, 3], [1, 2, 3], '["1","2","3"]'),
    (
        "numeric(10,2)[]",
        ["1.50", "2.00"],
        [Decimal("1.50"), Decimal("2.00")],
        '["1.50","2.00"]',
    ),
]


def _id(row: tuple[str, Any, Any, str]) -> str:
    return f"{row[0]}:{row[3]}"


def _stored(document_value: Any) -> Any:
    """The value as an Elasticsearch document returns it: through JSON and back."""
    return orjson.loads(orjson.dumps(document_value))


@pytest.mark.parametrize(("declared", "change", "source", "expected"), ROWS, ids=map(_id, ROWS))
def test_change_and_source_values_of_a_datum_compare_equal(
    declared: str, change: Any, source: Any, expected: str
) -> None:
    kind = column_type(declared)
    assert kind.canonical(kind.from_change(change)) == expected
    assert kind.canonical(kind.from_source(source)) == expected


@pytest.mark.parametrize(("declared", "change", "source", "expected"), ROWS, ids=map(_id, ROWS))
def test_a_document_read_back_compares_equal_to_its_source(
    declared: str, change: Any, source: Any, expected: str
) -> None:
    kind = column_type(declared)
    for value in (kind.from_change(change), kind.from_source(source)):
        assert kind.canonical(_stored(kind.to_document(value))) == kind.canonical(value)


@pytest.mark.parametrize(
    ("declared", "one", "other"),
    [
        ("numeric(10,2)", "12.50", "12.51"),
        ("numeric", "0.1", "0.2"),
        ("timestamptz", "2026-12-02T13:00:00.000001Z", "2026-12-02T13:00:00Z"),
        ("timestamp", 1, 2),
        ("text", "a", "A"),
        ("jsonb", '{"a": 1}', '{"a": "1"}'),
        ("integer[]", [1, 2], [2, 1]),
    ],
)
def test_different_values_compare_different(declared: str, one: Any, other: Any) -> None:
    kind = column_type(declared)
    assert kind.canonical(kind.from_change(one)) != kind.canonical(kind.from_change(other))


@pytest.mark.parametrize("declared", sorted({row[0] for row in ROWS}))
def test_null_passes_through(declared: str) -> None:
    kind = column_type(declared)
    assert nullable(kind.from_change)(None) is None
    assert nullable(kind.from_source)(None) is None


@pytest.mark.parametrize(
    ("declared", "placeholder"),
    [
        ("text", PLACEHOLDER),
        ("varchar(20)", PLACEHOLDER),
        ("jsonb", PLACEHOLDER),
        ("bytea", "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="),
        ("text[]", [PLACEHOLDER]),
        ("integer[]", [PLACEHOLDER]),
        ("numeric(10,2)[]", [PLACEHOLDER]),
    ],
)
def test_the_toast_placeholder_is_unavailable(declared: str, placeholder: Any) -> None:
    assert column_type(declared).from_change(placeholder) is UNAVAILABLE


def test_a_json_string_equal_to_the_placeholder_text_is_a_value() -> None:
    assert column_type("jsonb").from_change(f'"{PLACEHOLDER}"') == PLACEHOLDER


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        ("integer", "abc", r"integer: cannot read 'abc': expected a whole number"),
        ("integer", True, r"integer: .*whole number"),
        ("integer", 1.5, r"integer: .*whole number"),
        ("integer", 2**31, r"integer: .*out of range for 32-bit"),
        ("smallint", 40000, r"smallint: cannot read 40000: out of range for 16-bit"),
        ("smallint", -32769, r"smallint: .*out of range"),
        ("bigint", 2**63, r"bigint: .*out of range for 64-bit"),
        ("numeric(10,2)", "twelve", r"numeric: cannot read 'twelve': not a decimal"),
        ("numeric(10,2)", [1], r"numeric: .*expected a decimal string"),
        ("real", "1.5", r"real: .*expected a number"),
        ("boolean", "true", r"boolean: .*expected true or false"),
        ("timestamptz", "02/12/2026 13:00", r"timestamptz: .*not ISO-8601"),
        ("timestamptz", "2026-12-02T13:00:00", r"timestamptz: .*has no time zone"),
        ("timestamptz", 1796216400000, r"timestamptz: .*expected an ISO-8601 string"),
        ("timestamp", "2026-12-02T13:00:00", r"timestamp: .*count since the epoch"),
        ("date", "2026-12-02", r"date: .*days since the epoch"),
        ("time", "13:00", r"time: .*microseconds since midnight"),
        ("jsonb", "{not json", r"jsonb: .*not JSON"),
        ("jsonb", {"a": 1}, r"jsonb: .*expected JSON text"),
        ("uuid", "not-a-uuid", r"uuid: .*not a UUID"),
        ("bytea", "!!!", r"bytea: .*not base64"),
        ("text", 5, r"text: .*expected a string"),
        ("integer[]", 5, r"integer\[\]: .*expected an array"),
        ("integer[]", [1, "x"], r"integer: .*whole number"),
    ],
)
def test_bad_change_values_name_the_type(declared: str, value: Any, message: str) -> None:
    with pytest.raises(TypeError_, match=message):
        column_type(declared).from_change(value)


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        ("timestamptz", datetime(2026, 12, 2, 13), r"timestamptz: .*aware datetime"),
        ("timestamp", datetime(2026, 12, 2, 13, tzinfo=UTC), r"timestamp: .*without time zone"),
        ("date", datetime(2026, 12, 2), r"date: .*expected a date"),
        ("time", "13:00", r"time: .*expected a time"),
        ("bytea", "AP9odw==", r"bytea: .*expected bytes"),
        ("smallint", 70000, r"smallint: .*out of range"),
    ],
)
def test_bad_source_values_name_the_type(declared: str, value: Any, message: str) -> None:
    with pytest.raises(TypeError_, match=message):
        column_type(declared).from_source(value)


def test_long_bad_values_are_shortened_in_the_message() -> None:
    with pytest.raises(TypeError_) as err:
        column_type("integer").from_change("x" * 500)
    assert len(str(err.value)) < 120
    assert "..." in str(err.value)


@pytest.mark.parametrize(
    ("declared", "name"),
    [
        ("int8", "bigint"),
        ("int4", "integer"),
        ("int", "integer"),
        ("int2", "smallint"),
        ("float8", "double precision"),
        ("float4", "real"),
        ("bool", "boolean"),
        ("varchar", "text"),
        ("varchar(40)", "text"),
        ("character varying", "text"),
        ("decimal(10,2)", "numeric(10,2)"),
        ("numeric(10)", "numeric(10,0)"),
        ("NUMERIC( 10 , 2 )", "numeric(10,2)"),
        ("timestamp with time zone", "timestamptz"),
        ("timestamp without time zone", "timestamp"),
        ("json", "jsonb"),
        ("int8[]", "bigint[]"),
        ("varchar(5)[]", "text[]"),
    ],
)
def test_column_type_aliases(declared: str, name: str) -> None:
    assert column_type(declared).name == name


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("money", r"unknown type 'money'; known: text, varchar"),
        ("integer[][]", r"'integer\[\]\[\]': arrays of arrays are not supported"),
        ("integer(5)", r"'integer\(5\)': integer takes no precision"),
        ("timestamp(7)", r"timestamp precision is at most 6"),
        ("numeric(10,", r"cannot read the type 'numeric\(10,'"),
        ("", r"cannot read the type ''"),
    ],
)
def test_column_type_refusals(declared: str, message: str) -> None:
    with pytest.raises(TypeError_, match=message):
        column_type(declared)


@pytest.mark.parametrize(
    ("formatted", "name"),
    [
        ("character varying(20)", "text"),
        ("character varying", "text"),
        ("character(3)", "text"),
        ("text", "text"),
        ("timestamp(3) without time zone", "timestamp(3)"),
        ("timestamp without time zone", "timestamp"),
        ("timestamp with time zone", "timestamptz"),
        ("timestamp(3) with time zone", "timestamptz"),
        ("numeric(10,2)", "numeric(10,2)"),
        ("numeric", "numeric"),
        ("integer[]", "integer[]"),
        ("character varying(20)[]", "text[]"),
        ("jsonb", "jsonb"),
        ("json", "jsonb"),
        ("bytea", "bytea"),
        ("uuid", "uuid"),
        ("time without time zone", "time"),
        ("time(3) without time zone", "time"),
        ("double precision", "double precision"),
        ("bigint", "bigint"),
        ("smallint", "smallint"),
        ("boolean", "boolean"),
        ("date", "date"),
    ],
)
def test_catalog_type_reads_format_type(formatted: str, name: str) -> None:
    assert catalog_type(formatted).name == name


def test_catalog_type_refuses_what_pipelines_cannot_read() -> None:
    with pytest.raises(TypeError_, match="unknown type 'point'"):
        catalog_type("point")


@pytest.mark.parametrize(
    ("declared", "es", "warehouse", "spark"),
    [
        ("text", {"type": "keyword", "ignore_above": 8191}, "text", "string"),
        ("uuid", {"type": "keyword"}, "uuid", "string"),
        ("smallint", {"type": "short"}, "smallint", "short"),
        ("integer", {"type": "integer"}, "integer", "int"),
        ("bigint", {"type": "long"}, "bigint", "long"),
        ("numeric(10,2)", {"type": "double"}, "numeric(10,2)", "decimal(10,2)"),
        ("numeric", {"type": "double"}, "numeric", "decimal(38,10)"),
        ("real", {"type": "float"}, "real", "float"),
        ("double precision", {"type": "double"}, "double precision", "double"),
        ("boolean", {"type": "boolean"}, "boolean", "boolean"),
        ("timestamptz", {"type": "date"}, "timestamptz", "timestamp"),
        ("timestamp(3)", {"type": "date"}, "timestamp(3)", "timestamp_ntz"),
        ("date", {"type": "date", "format": "strict_date"}, "date", "date"),
        ("time", {"type": "keyword"}, "time", "string"),
        ("jsonb", {"type": "object", "enabled": False}, "jsonb", "string"),
        ("bytea", {"type": "binary"}, "bytea", "binary"),
        ("text[]", {"type": "keyword", "ignore_above": 8191}, "text[]", "array<string>"),
        ("numeric(10,2)[]", {"type": "double"}, "numeric(10,2)[]", "array<decimal(10,2)>"),
        ("jsonb[]", {"type": "object", "enabled": False}, "jsonb[]", "array<string>"),
    ],
)
def test_es_warehouse_and_spark_columns(
    declared: str, es: dict[str, Any], warehouse: str, spark: str
) -> None:
    kind = column_type(declared)
    assert (kind.es, kind.warehouse, kind.spark) == (es, warehouse, spark)


def test_only_text_is_textual_and_arrays_know_their_element() -> None:
    assert column_type("text").textual
    assert column_type("text[]").textual
    assert not column_type("uuid").textual
    array = column_type("integer[]")
    assert array.is_array
    assert array.element is not None
    assert array.element.name == "integer"
    assert not column_type("integer").is_array
