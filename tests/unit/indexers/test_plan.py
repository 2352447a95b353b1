"""Planning: a declaration against its table's catalog, and a template against a live index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.pipelines.declarations import IndexDeclaration
from indexers.plan import mapping_changes, same, source_problems

PATH = Path("pipelines/indexes/things.yaml")
# The table as `table_columns` reads it: column -> format_type().
TABLE = {
    "id": "bigint",
    "name": "character varying(40)",
    "placed_at": "timestamp with time zone",
    "price": "numeric(10,2)",
}
KIDS = {"id": "bigint", "parent_id": "bigint", "score": "smallint"}
SUMMARY: dict[str, Any] = {
    "name": "kids",
    "source": {"connector": "shop-source", "table": "public.kids"},
    "id": "id",
    "parent_key": "parent_id",
    "columns": {"score": "smallint"},
    "fields": {"kid_count": {"op": "count"}, "score_avg": {"op": "avg", "column": "score"}},
}


def declare(fields: dict[str, dict[str, Any]] | None = None, **changes: Any) -> IndexDeclaration:
    """`things`, read from PATH: the TABLE's columns declared with compatible spellings."""
    return IndexDeclaration.model_validate(
        {
            "name": "things",
            "source": {"connector": "shop-source", "table": "public.things"},
            "id": "id",
            "fields": fields
            or {
                "id": {"type": "int8", "filter": True},
                "name": {"type": "varchar", "search": True},
                "placed_at": {"type": "timestamptz", "sort": True},
                "price": {"type": "numeric(10,2)", "filter": True},
            },
            "path": PATH,
            **changes,
        }
    )


def test_compatible_spellings_have_no_problem() -> None:
    assert source_problems(declare(), dict(TABLE), {}) == ([], [])


def test_a_missing_table() -> None:
    problems, notes = source_problems(declare(), None, {})
    assert problems == [f"{PATH}: source.table: public.things does not exist"]
    assert notes == []


def test_a_missing_column() -> None:
    table = {k: v for k, v in TABLE.items() if k != "price"}
    problems, _ = source_problems(declare(), table, {})
    assert problems == [f"{PATH}: fields.price: public.things has no column price"]


def test_a_renamed_field_is_looked_up_by_its_column() -> None:
    fields = {"id": {"type": "bigint"}, "title": {"type": "text", "column": "name"}}
    problems, _ = source_problems(declare(fields, drop=["placed_at", "price"]), TABLE, {})
    assert problems == []
    problems, _ = source_problems(declare(fields), {"id": "bigint", "title": "text"}, {})
    assert problems == [f"{PATH}: fields.title: public.things has no column name"]


def test_a_type_mismatch() -> None:
    problems, _ = source_problems(declare(), {**TABLE, "id": "text"}, {})
    assert problems == [f"{PATH}: fields.id: column id is text in the table, declared bigint"]


@pytest.mark.parametrize(
    ("declared", "actual"),
    [
        ("numeric(10,2)", "numeric(12,2)"),
        ("numeric(10,2)", "numeric"),
        ("timestamptz", "timestamp without time zone"),
        ("integer", "bigint"),
        ("text", "text[]"),
    ],
)
def test_near_types_are_still_mismatches(declared: str, actual: str) -> None:
    fields = {"id": {"type": "bigint"}, "x": {"type": declared}}
    problems, _ = source_problems(declare(fields), {"id": "bigint", "x": actual}, {})
    assert problems == [f"{PATH}: fields.x: column x is {actual} in the table, declared {declared}"]


def test_a_column_type_pipelines_cannot_read() -> None:
    fields = {"id": {"type": "bigint"}, "spot": {"type": "text"}}
    problems, _ = source_problems(declare(fields), {"id": "bigint", "spot": "point"}, {})
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{PATH}: fields.spot: column spot has type point, which pipelines cannot read"
    )


def test_computed_fields_are_not_looked_up() -> None:
    fields: dict[str, dict[str, Any]] = {
        "id": {"type": "bigint"},
        "score": {"type": "integer", "computed": True},
    }
    declaration = declare(fields, transform="shop.transforms:score")
    assert source_problems(declaration, {"id": "bigint"}, {}) == ([], [])


def test_a_note_lists_undeclared_columns_not_dropped() -> None:
    table = {**TABLE, "secret": "text", "internal_flag": "boolean", "legacy": "jsonb"}
    problems, notes = source_problems(declare(drop=["secret"]), table, {})
    assert problems == []
    assert notes == [
        "things: columns not indexed (neither declared nor dropped): internal_flag, legacy"
    ]


def test_summary_child_columns_are_checked() -> None:
    declaration = declare(summaries=[SUMMARY])
    assert source_problems(declaration, TABLE, {"kids": KIDS}) == ([], [])

    problems, _ = source_problems(declaration, TABLE, {})
    assert problems == [f"{PATH}: summaries.0.source.table: public.kids does not exist"]

    problems, _ = source_problems(declaration, TABLE, {"kids": {"id": "bigint", "score": "text"}})
    assert problems == [
        f"{PATH}: summaries.0: public.kids has no column parent_id",
        f"{PATH}: summaries.0: column score is text in the table, declared smallint",
    ]


# --- live mappings and settings ----------------------------------------------------------------


def _mapping(**properties: Any) -> dict[str, Any]:
    return {"dynamic": "strict", "properties": properties}


def test_identical_mappings_have_no_changes() -> None:
    desired = _mapping(id={"type": "long"}, name={"type": "text", "analyzer": "english"})
    assert mapping_changes(desired, desired) == []


def test_mapping_changes() -> None:
    desired = _mapping(id={"type": "long"}, brand={"type": "keyword"}, price={"type": "double"})
    actual = _mapping(id={"type": "long"}, price={"type": "float"}, colour={"type": "keyword"})
    assert mapping_changes(desired, actual) == [
        "new field brand",
        "field colour removed",
        "field price mapped differently",
    ]


def test_a_new_sub_field_is_a_change() -> None:
    desired = _mapping(name={"type": "text", "fields": {"raw": {"type": "keyword"}}})
    actual = _mapping(name={"type": "text"})
    assert mapping_changes(desired, actual) == ["field name mapped differently"]


def test_a_dynamic_change() -> None:
    desired = _mapping(id={"type": "long"})
    assert mapping_changes(desired, {"properties": {"id": {"type": "long"}}}) == [
        "dynamic mapping changed"
    ]


def test_values_as_elasticsearch_returns_them_are_the_same() -> None:
    # Settings come back as strings, mapping numbers as floats, booleans as "true".
    assert same(
        {"number_of_replicas": 0, "max_gram": 20}, {"number_of_replicas": "0", "max_gram": "20"}
    )
    assert same({"number_of_shards": 1}, {"number_of_shards": "1"})
    assert same({"ignore_above": 100}, {"ignore_above": 100.0})
    assert same({"index": False}, {"index": "false"})
    assert same({"enabled": True}, {"enabled": "true"})
    assert same(["lowercase", "asciifolding"], ["lowercase", "asciifolding"])
    assert same("100ms", "100ms")


@pytest.mark.parametrize(
    ("desired", "actual"),
    [
        ({"number_of_replicas": 0}, {"number_of_replicas": "1"}),
        ({"ignore_above": 100}, {"ignore_above": 100.5}),
        ({"index": False}, {"index": "true"}),
        ({"index": False}, {"index": 0}),
        ({"max_gram": 20}, {"max_gram": "twenty"}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"a": 1, "b": 2}, {"a": 1}),
        (["lowercase", "asciifolding"], ["asciifolding", "lowercase"]),
        (["lowercase"], "lowercase"),
        ({"a": {"b": 1}}, {"a": 1}),
        ("100ms", "1s"),
    ],
)
def test_different_values_are_not_the_same(desired: Any, actual: Any) -> None:
    assert not same(desired, actual)
