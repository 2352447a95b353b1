"""The product merge: order-independent, idempotent, and deletes stay deleted."""

from __future__ import annotations

import itertools
import json
from typing import Any

from indexers.documents import merge_params, merge_product
from indexers.merge import MergeRequest, combine, plan_writes

ROW = {"id": 1, "name": "Mug", "stock": 1}


def apply(changes: list[dict[str, Any]]) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = None
    for params in changes:
        merged = merge_product(doc, params)
        doc = merged if merged is not None else doc
    return doc


CHANGES = [
    merge_params(product=ROW, product_lsn=10),
    merge_params(product={**ROW, "stock": 2}, product_lsn=20),
    merge_params(reviews={5: (15, 4)}),
    merge_params(reviews={6: (16, 2)}),
    merge_params(reviews={5: (25, None)}),  # review 5 deleted
]


def test_every_order_and_duplicates_converge() -> None:
    results = {
        json.dumps(apply([*order, *order[:2]]), sort_keys=True)
        for order in itertools.permutations(CHANGES)
    }
    assert len(results) == 1
    doc = apply(CHANGES)
    assert doc is not None
    assert doc["stock"] == 2 and doc["product_lsn"] == 20 and doc["live"] is True
    assert (doc["review_count"], doc["rating_avg"]) == (1, 2.0)


def test_stale_change_is_no_change() -> None:
    doc = apply(CHANGES[:2])
    assert merge_product(doc, CHANGES[0]) is None


def test_delete_then_stale_upsert_does_not_resurrect() -> None:
    deleted = apply([*CHANGES[:2], merge_params(product_lsn=30, product_live=False)])
    assert deleted is not None and deleted["live"] is False
    assert merge_product(deleted, merge_params(product=ROW, product_lsn=20)) is None
    back = merge_product(deleted, merge_params(product=ROW, product_lsn=40))
    assert back is not None and back["live"] is True


def test_combine_keeps_newest_component() -> None:
    combined = combine(
        [
            MergeRequest(1, merge_params(product=ROW, product_lsn=20, reviews={5: (15, 4)})),
            MergeRequest(1, merge_params(product=ROW, product_lsn=10, reviews={5: (25, 1)})),
        ]
    )
    params = combined[1].params
    assert params["product"]["lsn"] == 20 and params["reviews"]["5"] == [25, 1]


def test_plan_writes_uses_compare_and_set() -> None:
    requests = {1: MergeRequest(1, CHANGES[0]), 2: MergeRequest(2, CHANGES[0])}
    current = apply(CHANGES[:1])
    found = {1: {"_source": current, "_seq_no": 7, "_primary_term": 1}}
    actions, unchanged = plan_writes("products", requests, found)
    assert unchanged == 1  # product 1 already has this change
    (create,) = actions
    assert (create.op, create.id) == ("create", "2")
    found = {1: {"_source": apply(CHANGES[:1]), "_seq_no": 7, "_primary_term": 1}}
    requests = {1: MergeRequest(1, CHANGES[1])}
    (update,), _ = plan_writes("products", requests, found)
    assert (update.op, update.if_seq_no, update.if_primary_term) == ("index", 7, 1)
