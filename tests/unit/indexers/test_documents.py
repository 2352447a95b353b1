"""Documents of declared indexes: shaping, the merge rule, summaries, reindex heal, the hash."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from headwater.pipelines.declarations import IndexDeclaration, Pipelines
from headwater.pipelines.types import column_type
from indexers.bulk import Action, Outcome, classify, operations, sort_outcomes
from indexers.documents import (
    CHILDREN,
    LIVE,
    LSN,
    Params,
    ShapeError,
    Shaper,
    content_hash,
    document_id,
    merge,
)
from indexers.merge import MergeRequest, combine, plan_writes
from indexers.reindex import Snapshot, absent_ids, copy_params

CHANGE_ROW = {
    "id": 7, "sku": "SKU-7", "name": "Mug", "description": "Blue", "category": "kitchen",
    "brand": "Acme", "price": "12.50", "stock": 1,
    "created_at": "2025-01-01T10:00:00Z", "updated_at": "2025-01-02T10:00:00.5Z",
}  # fmt: skip
SOURCE_ROW = {
    **CHANGE_ROW,
    "price": Decimal("12.50"),
    "created_at": datetime(2025, 1, 1, 10, tzinfo=UTC),
    "updated_at": datetime(2025, 1, 2, 10, 0, 0, 500000, tzinfo=UTC),
}


@pytest.fixture(scope="module")
def products(shop: Pipelines) -> IndexDeclaration:
    return shop.index("products")


def test_a_change_and_the_source_row_shape_to_documents_with_one_hash(
    products: IndexDeclaration,
) -> None:
    shaper = Shaper(products)
    from_change = shaper.shape(CHANGE_ROW)
    from_source = shaper.shape(SOURCE_ROW, source=True)
    assert from_change == from_source and from_change.id == "7"
    assert content_hash(products, from_change.fields) == content_hash(products, SOURCE_ROW)


def test_the_hash_sees_every_declared_field_and_figure(products: IndexDeclaration) -> None:
    base = {**Shaper(products).shape(CHANGE_ROW).fields, "review_count": 2, "rating_avg": 4.5}
    digest = content_hash(products, base)
    for name in products.document_fields:
        changed = {**base, name: None}
        assert content_hash(products, changed) != digest, name


def test_composite_ids_are_escaped_and_stable() -> None:
    kinds = [column_type("text"), column_type("date")]
    from datetime import date

    assert document_id(["a|b", date(2026, 1, 2)], kinds) == "a%7Cb|2026-01-02"
    assert document_id(["a", "2026-01-02"], kinds) == "a|2026-01-02"
    with pytest.raises(ShapeError):
        document_id([None, "2026-01-02"], kinds)


def apply(declaration: IndexDeclaration, changes: list[Params]) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = None
    for params in changes:
        merged = merge(declaration, doc, params)
        doc = merged if merged is not None else doc
    return doc


ROW = {"id": 1, "name": "Mug", "stock": 1}


def changes() -> list[Params]:
    return [
        Params(lsn=10, fields=ROW),
        Params(lsn=20, fields={**ROW, "stock": 2}),
        Params(children={"reviews": {"5": [15, [4]]}}),
        Params(children={"reviews": {"6": [16, [2]]}}),
        Params(children={"reviews": {"5": [25, None]}}),  # review 5 deleted
    ]


def test_every_order_and_duplicates_converge(products: IndexDeclaration) -> None:
    results = set()
    for order in itertools.permutations(range(5)):
        fresh = changes()
        sequence = [fresh[i] for i in order] + [changes()[order[0]], changes()[order[1]]]
        results.add(json.dumps(apply(products, sequence), sort_keys=True))
    assert len(results) == 1
    doc = apply(products, changes())
    assert doc is not None
    assert doc["stock"] == 2 and doc[LSN] == 20 and doc[LIVE] is True
    assert (doc["review_count"], doc["rating_avg"]) == (1, 2.0)


def test_a_stale_change_is_no_change(products: IndexDeclaration) -> None:
    doc = apply(products, changes()[:2])
    assert merge(products, doc, Params(lsn=10, fields=ROW)) is None


def test_a_delete_then_a_stale_upsert_does_not_resurrect(products: IndexDeclaration) -> None:
    deleted = apply(products, [*changes()[:2], Params(lsn=30, live=False)])
    assert deleted is not None and deleted[LIVE] is False
    assert merge(products, deleted, Params(lsn=20, fields=ROW)) is None
    back = merge(products, deleted, Params(lsn=40, fields=ROW))
    assert back is not None and back[LIVE] is True


def test_a_kept_field_keeps_its_value(products: IndexDeclaration) -> None:
    doc = apply(products, [Params(lsn=10, fields={**ROW, "description": "Blue"})])
    after = merge(products, doc, Params(lsn=11, fields={**ROW, "stock": 9}, keep=("description",)))
    assert after is not None and after["description"] == "Blue" and after["stock"] == 9


def test_combine_keeps_the_newest_component() -> None:
    combined = combine(
        [
            MergeRequest("1", Params(lsn=20, fields=ROW, children={"reviews": {"5": [15, [4]]}})),
            MergeRequest("1", Params(lsn=10, fields=ROW, children={"reviews": {"5": [25, [1]]}})),
        ]
    )
    params = combined["1"].params
    assert params.lsn == 20 and params.children["reviews"]["5"] == [25, [1]]


def test_plan_writes_uses_compare_and_set(products: IndexDeclaration) -> None:
    first = changes()[0]
    requests = {"1": MergeRequest("1", first), "2": MergeRequest("2", first)}
    current = apply(products, [first])
    found = {"1": {"_source": current, "_seq_no": 7, "_primary_term": 1}}
    actions, unchanged = plan_writes(products, "products", requests, found)
    assert unchanged == 1  # document 1 already has this change
    (create,) = actions
    assert (create.op, create.id) == ("create", "2")
    requests = {"1": MergeRequest("1", changes()[1])}
    (update,), _ = plan_writes(products, "products", requests, found)
    assert (update.op, update.if_seq_no, update.if_primary_term) == ("index", 7, 1)


def test_every_figure_of_a_summary(shop: Pipelines) -> None:
    from headwater.pipelines.declarations import Summary
    from indexers.documents import figures

    summary = Summary.model_validate(
        {
            "name": "lines",
            "source": {"connector": "c", "table": "public.lines"},
            "id": "id",
            "parent_key": "order_id",
            "columns": {"qty": "integer", "at": "timestamptz", "note": "text"},
            "fields": {
                "n": {"op": "count"},
                "total": {"op": "sum", "column": "qty"},
                "mean": {"op": "avg", "column": "qty"},
                "low": {"op": "min", "column": "qty"},
                "high": {"op": "max", "column": "qty"},
                "last_note": {"op": "latest", "column": "note", "by": "at"},
            },
        }
    )
    assert summary.read_columns == ("at", "note", "qty")
    rows = [["2026-01-02T00:00:00+00:00", "second", 5], ["2026-01-01T00:00:00+00:00", "first", 1]]
    assert figures(summary, rows) == {
        "n": 2, "total": 6, "mean": 3.0, "low": 1, "high": 5, "last_note": "second"}  # fmt: skip
    empty = figures(summary, [])
    assert empty["n"] == 0 and {v for k, v in empty.items() if k != "n"} == {None}


def test_ids_without_a_source_row_are_absent() -> None:
    assert absent_ids(["3", "1", "2"], ["1"]) == ["3", "2"]


def test_reindex_copies_heal_children_the_snapshot_no_longer_has(
    products: IndexDeclaration,
) -> None:
    old = {"_id": "1", LSN: 5, LIVE: True, "name": "Mug",
           CHILDREN: {"reviews": {"5": [4, [5]], "6": [9, [1]], "7": [50, [3]]}}}  # fmt: skip
    snapshot = Snapshot(10, [], [], {"1": {"reviews": {"6"}}})
    params = copy_params(old, snapshot, products.fields)
    assert params is not None
    # 5 was gone at the snapshot; 6 is in it; 7 was written after it and stays.
    assert params.children["reviews"] == {"5": [10, None], "6": [9, [1]], "7": [50, [3]]}
    assert copy_params({"name": "old layout"}, snapshot, products.fields) is None


def test_operations_version_externally_and_compare_and_set() -> None:
    lines = operations(
        [
            Action(op="index", index="reviews", id="1", body={"a": 1}, version=42),
            Action(op="index", index="p", id="2", body={}, if_seq_no=3, if_primary_term=1),
        ]
    )
    assert lines[0] == {"index": {"_index": "reviews", "_id": "1", "version": 42,
                                  "version_type": "external"}}  # fmt: skip
    assert lines[2]["index"]["if_seq_no"] == 3


def test_classify() -> None:
    versioned = Action(op="index", index="i", id="1", body={}, version=1)
    cas = Action(op="index", index="i", id="1", body={}, if_seq_no=1, if_primary_term=1)
    assert classify(versioned, {"status": 409})[0] is Outcome.STALE
    assert classify(cas, {"status": 409})[0] is Outcome.CONFLICT
    assert classify(versioned, {"status": 429})[0] is Outcome.RETRY
    assert classify(versioned, {"status": 400, "error": {"type": "x"}})[0] is Outcome.REJECTED


def test_a_blocked_index_is_retried_through_an_alias_and_resolved_again_by_a_merge() -> None:
    block = {"status": 403, "error": {"type": "cluster_block_exception", "reason": "write"}}
    through_alias = Action(op="index", index="products", id="1", body={}, version=1)
    concrete = Action(op="create", index="products-v1", id="2", body={}, concrete=True)
    assert classify(through_alias, block)[0] is Outcome.BLOCKED
    forbidden = {"status": 403, "error": {"type": "security_exception"}}
    assert classify(through_alias, forbidden)[0] is Outcome.REJECTED
    result, retry = sort_outcomes([through_alias, concrete], [{"index": block}, {"create": block}])
    assert retry == [through_alias]  # the alias may point elsewhere by the next attempt
    assert result.conflicts == [concrete] and result.blocked == 1 and not result.rejected


def test_a_merge_reads_and_writes_the_concrete_index(products: IndexDeclaration) -> None:
    requests = {"1": MergeRequest("1", changes()[0])}
    (create,), _ = plan_writes(products, "products-v2", requests, {}, alias="products")
    assert (create.index, create.concrete) == ("products-v2", True)
    assert operations([create])[0]["create"]["require_alias"] is False
    (through,), _ = plan_writes(products, "products", requests, {}, alias="products")
    assert not through.concrete and "require_alias" not in operations([through])[0]["create"]


def _with_transform(products: IndexDeclaration, function: str) -> IndexDeclaration:
    data = products.model_dump(exclude={"path"})
    data["fields"]["label"] = {"type": "text", "computed": True, "search": True}
    data["transform"] = f"tests.unit.indexers.transforms:{function}"
    return IndexDeclaration.model_validate(data)


def test_a_transform_fills_computed_fields_on_both_paths(products: IndexDeclaration) -> None:
    declared = _with_transform(products, "with_label")
    shaper = Shaper(declared)
    from_change = shaper.shape(CHANGE_ROW)
    assert from_change.fields["label"] == "Mug (SKU-7)"
    assert from_change == shaper.shape(SOURCE_ROW, source=True)
    changed = {**from_change.fields, "label": "Other"}
    assert content_hash(declared, changed) != content_hash(declared, from_change.fields)


@pytest.mark.parametrize(
    ("function", "message"),
    [("broken", "no luck"), ("adds_undeclared", "undeclared fields: surprise")],
)
def test_a_failing_transform_is_the_rows_failure(
    products: IndexDeclaration, function: str, message: str
) -> None:
    with pytest.raises(ShapeError, match=message):
        Shaper(_with_transform(products, function)).shape(CHANGE_ROW)


def test_a_missing_transform_fails_at_start_up(products: IndexDeclaration) -> None:
    with pytest.raises(ImportError, match="has no function nothing_here"):
        Shaper(_with_transform(products, "nothing_here"))
