"""The one table of column types: a declared PostgreSQL type, as Debezium's JSON carries it, as
Elasticsearch maps it, as the warehouse stores it, and as `verify` compares it.

Pure: no I/O. Every path that touches a column value goes through a `ColumnType` from
`column_type(...)`, so the stream workers, `reindex`, `verify` and the warehouse mirror can
never disagree about what a value is.

The Debezium encodings assume the connector settings the project's connector files use (and
`pipelines validate` checks): `decimal.handling.mode: string`, `time.precision.mode:
adaptive_time_microseconds`, `binary.handling.mode: bytes` (base64 in JSON), JSON converters
without schemas. Values move through four shapes:
- `from_change`: the JSON value in a change event -> the Python value;
- `from_source`: what psycopg returns when reading the table -> the same Python value;
- `to_document`: the Python value -> the JSON stored in an Elasticsearch document;
- `canonical`: the Python value (or a document's JSON value) -> a string that is equal for equal
  values, the unit of comparison of `verify`.

A TOASTed column that an UPDATE did not change arrives as Debezium's placeholder; `from_change`
returns `UNAVAILABLE` for it, and the writer keeps the value it already has.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

PLACEHOLDER = "__debezium_unavailable_value"
_PLACEHOLDER_B64 = base64.b64encode(PLACEHOLDER.encode()).decode()
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)


class _Unavailable:
    """A TOASTed value Debezium did not send: "unchanged by this update"."""

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Any = _Unavailable()


class TypeError_(ValueError):
    """A value that does not fit its declared column type; the message says which and why."""


@dataclass(frozen=True)
class ColumnType:
    """How one declared column type moves through the pipeline (see the module docstring)."""

    name: str  # as declared, normalised: "numeric(10,2)", "text[]"
    es: dict[str, Any]  # the Elasticsearch field mapping it gets when it is only stored or filtered
    warehouse: str  # PostgreSQL type of the analytics table's column
    spark: str  # Spark SQL type the mirror job reads it as
    textual: bool  # can be analysed as full text
    from_change: Callable[[Any], Any]
    from_source: Callable[[Any], Any]
    to_document: Callable[[Any], Any]
    canonical: Callable[[Any], str | None]
    element: ColumnType | None = None  # for arrays

    @property
    def is_array(self) -> bool:
        return self.element is not None


# --- converters ------------------------------------------------------------------------------


def _fail(type_name: str, value: Any, why: str = "") -> TypeError_:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return TypeError_(f"{type_name}: cannot read {shown}{': ' + why if why else ''}")


def _identity(value: Any) -> Any:
    return value


def _text(name: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if not isinstance(value, str):
            raise _fail(name, value, "expected a string")
        return UNAVAILABLE if value == PLACEHOLDER else value

    return read


def _integer(name: str, bits: int) -> Callable[[Any], Any]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, value, "expected a whole number")
        if not low <= value <= high:
            raise _fail(name, value, f"out of range for {bits}-bit integers")
        return value

    return read


def _decimal(name: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise _fail(name, value, "expected a decimal string")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _fail(name, value, "not a decimal") from None
        return number

    return read


def _float(name: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if isinstance(value, bool):
            raise _fail(name, value, "expected a number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        raise _fail(name, value, "expected a number")

    return read


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _fail("boolean", value, "expected true or false")
    return value


def _timestamptz_change(value: Any) -> Any:
    # io.debezium.time.ZonedTimestamp: an ISO-8601 string in UTC.
    if not isinstance(value, str):
        raise _fail("timestamptz", value, "expected an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail("timestamptz", value, "not ISO-8601") from None
    if parsed.tzinfo is None:
        raise _fail("timestamptz", value, "has no time zone")
    return parsed.astimezone(UTC)


def _timestamptz_source(value: Any) -> Any:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail("timestamptz", value, "expected an aware datetime")
    return value.astimezone(UTC)


def _timestamp_change(precision: int) -> Callable[[Any], Any]:
    # adaptive_time_microseconds: TIMESTAMP(0-3) is io.debezium.time.Timestamp (ms since the
    # epoch), TIMESTAMP(4-6) is MicroTimestamp (µs).
    per_second = 1_000 if precision <= 3 else 1_000_000

    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("timestamp", value, "expected a count since the epoch")
        return _EPOCH + timedelta(microseconds=value * (1_000_000 // per_second))

    return read


def _timestamp_source(value: Any) -> Any:
    if not isinstance(value, datetime) or value.tzinfo is not None:
        raise _fail("timestamp", value, "expected a datetime without time zone")
    return value


def _date_change(value: Any) -> Any:
    # io.debezium.time.Date: days since the epoch.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("date", value, "expected days since the epoch")
    return _EPOCH_DATE + timedelta(days=value)


def _date_source(value: Any) -> Any:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _fail("date", value, "expected a date")
    return value


def _time_change(value: Any) -> Any:
    # io.debezium.time.MicroTime: microseconds since midnight.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("time", value, "expected microseconds since midnight")
    return (datetime.min + timedelta(microseconds=value)).time()


def _time_source(value: Any) -> Any:
    if not isinstance(value, time):
        raise _fail("time", value, "expected a time")
    return value


def _json_change(value: Any) -> Any:
    # io.debezium.data.Json: the JSON text as a string.
    if not isinstance(value, str):
        raise _fail("jsonb", value, "expected JSON text")
    if value == PLACEHOLDER:
        return UNAVAILABLE
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _fail("jsonb", value, "not JSON") from None


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise _fail("uuid", value, "expected a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _fail("uuid", value, "not a UUID") from None


def _bytes_change(value: Any) -> Any:
    if not isinstance(value, str):
        raise _fail("bytea", value, "expected base64 text")
    if value == _PLACEHOLDER_B64:
        return UNAVAILABLE
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise _fail("bytea", value, "not base64") from None


def _bytes_source(value: Any) -> Any:
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if not isinstance(value, bytes):
        raise _fail("bytea", value, "expected bytes")
    return value


def _iso(value: Any) -> Any:
    return value.isoformat()


def _bytes_document(value: Any) -> Any:
    return base64.b64encode(value).decode()


def _canonical_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _canonical_decimal(scale: int | None) -> Callable[[Any], str | None]:
    def canonical(value: Any) -> str | None:
        number = Decimal(str(value))
        if scale is not None:
            return f"{number:.{scale}f}"
        # Documents hold decimals as JSON numbers: compare at the precision a double keeps.
        return f"{float(number):.15g}"

    return canonical


def _canonical_float(value: Any) -> str | None:
    return repr(float(value))


def _canonical_str(value: Any) -> str | None:
    return str(value)


def _canonical_timestamptz(value: Any) -> str | None:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return str(parsed.astimezone(UTC).isoformat(timespec="microseconds"))


def _canonical_naive(kind: type[datetime] | type[date] | type[time]) -> Callable[[Any], str | None]:
    def canonical(value: Any) -> str | None:
        parsed = kind.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(parsed, datetime | time):
            return str(parsed.isoformat(timespec="microseconds"))
        return str(parsed.isoformat())

    return canonical


def _canonical_bytes(value: Any) -> str | None:
    raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode()


def _canonical_json_value(value: Any) -> str | None:
    return _canonical_json(value)


def _canonical_bool(value: Any) -> str | None:
    return "true" if value else "false"


# --- the table -------------------------------------------------------------------------------

_ALIASES = {
    "varchar": "text",
    "character varying": "text",
    "char": "text",
    "character": "text",
    "citext": "text",
    "int2": "smallint",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "serial": "integer",
    "bigserial": "bigint",
    "decimal": "numeric",
    "float4": "real",
    "float8": "double precision",
    "double": "double precision",
    "bool": "boolean",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
    "json": "jsonb",
}
_SHAPE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


def _scalar(name: str, p: int | None, s: int | None) -> ColumnType:
    # Literal table rows, one per base type; `p` and `s` are the declared precision and scale.
    if name == "text":
        read = _text("text")
        return ColumnType(
            "text",
            {"type": "keyword", "ignore_above": 8191},
            "text",
            "string",
            True,
            read,
            read,
            _identity,
            _canonical_str,
        )
    if name == "uuid":
        return ColumnType(
            "uuid",
            {"type": "keyword"},
            "uuid",
            "string",
            False,
            _uuid,
            _uuid,
            _identity,
            _canonical_str,
        )
    if name in ("smallint", "integer", "bigint"):
        bits = {"smallint": 16, "integer": 32, "bigint": 64}[name]
        es_type = {"smallint": "short", "integer": "integer", "bigint": "long"}[name]
        spark = {"smallint": "short", "integer": "int", "bigint": "long"}[name]
        read = _integer(name, bits)
        return ColumnType(
            name, {"type": es_type}, name, spark, False, read, read, _identity, _canonical_str
        )
    if name == "numeric":
        read = _decimal(name)
        declared = (
            f"numeric({p},{s})"
            if p is not None and s is not None
            else (f"numeric({p})" if p is not None else "numeric")
        )
        # A JSON number in documents (`double`: `scaled_float` is not in every distribution);
        # `canonical` compares at the declared scale, which a double keeps up to 15 digits.
        mapping: dict[str, Any] = {"type": "double"}
        spark = f"decimal({p},{s if s is not None else 0})" if p is not None else "decimal(38,10)"
        return ColumnType(
            declared,
            mapping,
            declared,
            spark,
            False,
            read,
            read,
            float,
            _canonical_decimal(s if p is not None else None),
        )
    if name in ("real", "double precision"):
        read = _float(name)
        es_type = "float" if name == "real" else "double"
        spark = "float" if name == "real" else "double"
        return ColumnType(
            name, {"type": es_type}, name, spark, False, read, read, _identity, _canonical_float
        )
    if name == "boolean":
        return ColumnType(
            "boolean",
            {"type": "boolean"},
            "boolean",
            "boolean",
            False,
            _boolean,
            _boolean,
            _identity,
            _canonical_bool,
        )
    if name == "timestamptz":
        return ColumnType(
            "timestamptz",
            {"type": "date"},
            "timestamptz",
            "timestamp",
            False,
            _timestamptz_change,
            _timestamptz_source,
            lambda v: v.isoformat(),
            _canonical_timestamptz,
        )
    if name == "timestamp":
        # Debezium encodes TIMESTAMP(0-3) in ms and TIMESTAMP(4-6) in µs: two types, not seven.
        precision = 6 if p is None else p
        declared = "timestamp" if precision > 3 else "timestamp(3)"
        return ColumnType(
            declared,
            {"type": "date"},
            declared,
            "timestamp_ntz",
            False,
            _timestamp_change(precision),
            _timestamp_source,
            _iso,
            _canonical_naive(datetime),
        )
    if name == "date":
        return ColumnType(
            "date",
            {"type": "date", "format": "strict_date"},
            "date",
            "date",
            False,
            _date_change,
            _date_source,
            _iso,
            _canonical_naive(date),
        )
    if name == "time":
        return ColumnType(
            "time",
            {"type": "keyword"},
            "time",
            "string",
            False,
            _time_change,
            _time_source,
            _iso,
            _canonical_naive(time),
        )
    if name == "jsonb":
        # Any JSON (object, array, scalar), kept as-is and not indexed field by field.
        return ColumnType(
            "jsonb",
            {"type": "object", "enabled": False},
            "jsonb",
            "string",
            False,
            _json_change,
            _identity,
            _identity,
            _canonical_json_value,
        )
    if name == "bytea":
        return ColumnType(
            "bytea",
            {"type": "binary"},
            "bytea",
            "binary",
            False,
            _bytes_change,
            _bytes_source,
            _bytes_document,
            _canonical_bytes,
        )
    raise TypeError_(f"unknown type {name!r}; known: {', '.join(KNOWN_TYPES)}")


KNOWN_TYPES = (
    "text",
    "varchar",
    "uuid",
    "smallint",
    "integer",
    "bigint",
    "numeric(p,s)",
    "real",
    "double precision",
    "boolean",
    "timestamptz",
    "timestamp(p)",
    "date",
    "time",
    "jsonb",
    "bytea",
    "and arrays of these (text[], ...)",
)


def _array(element: ColumnType) -> ColumnType:
    def each(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def convert(value: Any) -> Any:
            if value == [PLACEHOLDER] or value == PLACEHOLDER:
                return UNAVAILABLE
            if not isinstance(value, list):
                raise _fail(f"{element.name}[]", value, "expected an array")
            return [None if v is None else read(v) for v in value]

        return convert

    def canonical(value: Any) -> str | None:
        return _canonical_json([None if v is None else element.canonical(v) for v in value])

    def to_document(value: Any) -> Any:
        return [None if v is None else element.to_document(v) for v in value]

    es = element.es if element.name != "jsonb" else {"type": "object", "enabled": False}
    return ColumnType(
        f"{element.name}[]",
        es,
        f"{element.warehouse}[]",
        f"array<{element.spark}>",
        element.textual,
        each(element.from_change),
        each(element.from_source),
        to_document,
        canonical,
        element,
    )


def column_type(declared: str) -> ColumnType:
    """The `ColumnType` of a declared PostgreSQL type (`numeric(10,2)`, `text[]`, `int8`, ...).

    Raises `TypeError_` naming the known types when `declared` is not one of them.
    """
    text = declared.strip().lower()
    if text.endswith("[]"):
        inner = column_type(text[:-2])
        if inner.is_array:
            raise TypeError_(f"{declared!r}: arrays of arrays are not supported")
        return _array(inner)
    match = _SHAPE.match(text)
    if not match:
        raise TypeError_(f"cannot read the type {declared!r}; known: {', '.join(KNOWN_TYPES)}")
    base, p, s = match.group(1), match.group(2), match.group(3)
    base = _ALIASES.get(base, base)
    precision = int(p) if p is not None else None
    scale = int(s) if s is not None else None
    if precision is not None and base not in ("numeric", "timestamp", "text"):
        raise TypeError_(f"{declared!r}: {base} takes no precision")
    if base == "numeric" and precision is not None and scale is None:
        scale = 0
    if base == "timestamp" and precision is not None and precision > 6:
        raise TypeError_(f"{declared!r}: timestamp precision is at most 6")
    return _scalar(base, precision if base != "text" else None, scale)


def nullable(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`read`, passing None through (a NULL column)."""

    def convert(value: Any) -> Any:
        return None if value is None else read(value)

    return convert


def catalog_type(formatted: str) -> ColumnType:
    """The `ColumnType` of a column as PostgreSQL's `format_type()` names it."""
    text = formatted.strip().lower()
    array = text.endswith("[]")
    text = text.removesuffix("[]")
    text = re.sub(r"^timestamp(\(\d+\))? with time zone$", "timestamptz", text)
    text = re.sub(r"^timestamp(\(\d+\))? without time zone$", r"timestamp\1", text)
    text = re.sub(r"^time(\(\d+\))? without time zone$", "time", text)
    text = re.sub(r"^(character varying|character|varchar|char)(\(\d+\))?$", "text", text)
    return column_type(text + ("[]" if array else ""))


def type_mismatch(declared: str, formatted: str) -> str | None:
    """Why a table column PostgreSQL's `format_type()` calls `formatted` cannot be read as the
    `declared` type, or None when it can."""
    try:
        if catalog_type(formatted).name == column_type(declared).name:
            return None
    except TypeError_ as exc:
        return f"has type {formatted}, which pipelines cannot read: {exc}"
    return f"is {formatted} in the table, declared {declared}"


def column_problem(
    table: str, column: str, declared: str | None, columns: Mapping[str, str]
) -> str | None:
    """Why `column` of `table` (`columns`: its columns as `format_type()` names them) cannot be
    read as the `declared` type (None: it need only exist), or None when it can."""
    if column not in columns:
        return f"{table} has no column {column}"
    why = None if declared is None else type_mismatch(declared, columns[column])
    return None if why is None else f"column {column} {why}"
