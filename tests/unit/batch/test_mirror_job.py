"""The mirror job's pure parts: where a declaration lands and how its tables follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batch import mirror_transforms as mt
from batch.jobs import mirror
from headwater.pipelines.declarations import MirrorDeclaration


def declaration(**extra: Any) -> MirrorDeclaration:
    return MirrorDeclaration.model_validate(
        {
            "name": "things",
            "source": {"connector": "shop-source", "table": "public.things"},
            "id": ["id", "region"],
            "columns": {"id": "bigint", "region": "text", "price": "numeric(10,2)"},
            "path": Path("mirrors/things.yaml"),
            **extra,
        }
    )


def test_the_target_is_the_name_or_the_declared_schema_and_table() -> None:
    assert mirror.Target.of(declaration()) == mirror.Target(None, "things")
    assert mirror.Target.of(declaration(target_table="shop.items")) == mirror.Target(
        "shop", "items"
    )
    with pytest.raises(ValueError, match="target_table"):
        mirror.Target.of(declaration(target_table="a.b.c"))
    assert mirror.job_name("things") == "mirror:things"


def test_new_declared_columns_are_added_and_changed_types_named() -> None:
    shape = mt.MirrorShape.of(
        declaration(
            columns={"id": "bigint", "region": "text", "price": "numeric(12,2)", "n": "int"}
        )
    )
    added, differ = mirror.column_changes(
        shape,
        {
            "id": "bigint",
            "region": "character varying(20)",
            "price": "numeric(10,2)",
            "hw_lsn": "bigint",
        },
    )
    assert [(name, kind.warehouse) for name, kind in added] == [("n", "integer")]
    assert differ == ["price is numeric(10,2), declared numeric(12,2)"]


def test_the_tables_are_keyed_by_the_declared_id() -> None:
    shape = mt.MirrorShape.of(declaration())
    target = mirror.Target.of(declaration(target_table="shop.items"))
    created = [s.as_string() for s in mirror.create_statements(shape, target, history=True)]
    assert created[0] == 'CREATE SCHEMA IF NOT EXISTS "shop"'
    assert 'PRIMARY KEY ("id", "region")' in created[1] and '"price" numeric(10,2)' in created[1]
    assert created[2].startswith('CREATE TABLE IF NOT EXISTS "shop"."items__deletes"')
    assert 'PRIMARY KEY ("id", "region", hw_lsn)' in created[3]
    assert "is_current boolean NOT NULL" in created[3]
    without = mirror.create_statements(shape, target, history=False)
    assert not any("items_history" in s.as_string() for s in without)
