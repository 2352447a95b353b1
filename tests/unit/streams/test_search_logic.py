"""The pure search mapping: change events into bulk actions."""

from __future__ import annotations

import json
from typing import Any

from headwater.models.cdc import decode_change
from streams.common import Record, decode_records
from streams.search.logic import plan_products, plan_reviews

PRODUCT_ROW = {
    "id": 7,
    "sku": "SKU-7",
    "name": "Trail shoe",
    "description": "Light",
    "category": "shoes",
    "brand": "Acme",
    "price": "59.90",
    "stock": 3,
    "created_at": "2025-01-01T10:00:00.000001Z",
    "updated_at": "2025-01-02T10:00:00Z",
}
REVIEW_ROW = {
    "id": 70,
    "product_id": 7,
    "customer_id": 1,
    "rating": 4,
    "body": "Good",
    "created_at": "2025-01-01T10:00:00Z",
    "updated_at": "2025-01-01T10:00:00Z",
}


def record(
    table: str, row: dict[str, Any], lsn: int, op: str = "u", offset: int = 0, deleted: bool = False
) -> Record:
    value = {**row, "__op": op, "__lsn": lsn, "__source_ts_ms": 1, "__table": table}
    value["__deleted"] = "true" if deleted else "false"
    return Record(
        f"shop.public.{table}",
        0,
        offset,
        json.dumps({"id": row["id"]}).encode(),
        json.dumps(value).encode(),
    )


def changes(*records: Record) -> list[Any]:
    out = []
    for r in records:
        change = decode_change(r.key, r.value)
        assert change is not None
        out.append((r, change))
    return out


def test_product_upsert_is_a_merge_at_its_lsn() -> None:
    planned = plan_products(changes(record("products", PRODUCT_ROW, 100)))
    assert not planned.failures and not planned.actions
    (merge,) = planned.merges
    assert merge.product_id == 7 and merge.where == "shop.public.products[0]@0"
    params = merge.params
    assert params["product"]["lsn"] == 100 and params["product"]["live"] is True
    assert params["product"]["fields"]["price"] == 59.9
    assert params["product"]["fields"]["created_at"] == "2025-01-01T10:00:00.000001+00:00"
    assert params["reviews"] is None


def test_burst_to_one_row_coalesces_to_the_highest_lsn() -> None:
    burst = [record("products", {**PRODUCT_ROW, "stock": n}, 100 + n, offset=n) for n in range(5)]
    burst.insert(0, record("products", {**PRODUCT_ROW, "stock": 99}, 50, offset=9))  # older
    (merge,) = plan_products(changes(*burst)).merges
    assert merge.params["product"]["lsn"] == 104
    assert merge.params["product"]["fields"]["stock"] == 4


def test_product_delete_is_a_dead_marker() -> None:
    rec = record("products", PRODUCT_ROW, 200, op="d", deleted=True)
    (merge,) = plan_products(changes(rec)).merges
    product = merge.params["product"]
    assert product == {"lsn": 200, "live": False, "fields": None}


def test_invalid_row_is_dead_lettered_not_raised() -> None:
    rec = record("products", {**PRODUCT_ROW, "price": "not a price"}, 100, offset=3)
    planned = plan_products(changes(rec))
    assert not planned.merges
    (letter,) = planned.failures
    assert letter.where == "shop.public.products[0]@3" and "price" in letter.error


def test_review_writes_versioned_doc_and_summary_merge() -> None:
    planned = plan_reviews(changes(record("reviews", REVIEW_ROW, 300)), "reviews")
    (review,) = planned.actions
    assert (review.op, review.version, review.index) == ("index", 300, "reviews")
    assert review.body["text"] == "Good" and review.body["live"] is True
    (product,) = planned.merges
    assert product.product_id == 7
    assert product.params["reviews"] == {"70": [300, 4]}
    assert product.params["product"] is None


def test_review_delete_retracts_its_rating() -> None:
    rec = record("reviews", REVIEW_ROW, 400, op="d", deleted=True)
    planned = plan_reviews(changes(rec), "reviews")
    (review,), (product,) = planned.actions, planned.merges
    assert review.body == {"id": 70, "product_id": 7, "live": False}
    assert review.version == 400
    assert product.params["reviews"] == {"70": [400, None]}


def test_reviews_of_one_product_share_one_merge() -> None:
    other = {**REVIEW_ROW, "id": 71, "rating": 2}
    planned = plan_reviews(
        changes(record("reviews", REVIEW_ROW, 300), record("reviews", other, 301)),
        "reviews",
    )
    (merge,) = planned.merges
    assert merge.params["reviews"] == {"70": [300, 4], "71": [301, 2]}


def test_decode_splits_tombstones_and_malformed() -> None:
    good = record("products", PRODUCT_ROW, 1)
    tombstone = Record("shop.public.products", 1, 5, b'{"id": 7}', None)
    broken = Record("shop.public.products", 2, 6, b'{"id": 8}', b"not json")
    decoded = decode_records([good, tombstone, broken])
    assert len(decoded.changes) == 1 and decoded.tombstones == 1
    (letter,) = decoded.failures
    assert letter.where == "shop.public.products[2]@6" and letter.key == '{"id": 8}'
