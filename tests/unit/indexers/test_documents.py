"""Documents, their hash, the bulk response classification and the index names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from headwater.models.shop import Product
from indexers.bulk import Action, Outcome, classify, operations
from indexers.catalog import spec
from indexers.documents import product_fields, product_hash, review_hash, summary_of

ROW = Product(
    id=1,
    sku="S1",
    name="Mug",
    description="Blue",
    category="kitchen",
    brand="Acme",
    price=Decimal("12.50"),
    stock=4,
    created_at=datetime(2025, 1, 1, 12, tzinfo=UTC),
    updated_at=datetime(2025, 1, 1, 14, tzinfo=timezone(timedelta(hours=2))),
)


def test_hash_agrees_between_source_and_index_shapes() -> None:
    source = {**product_fields(ROW), **summary_of([4, 5])}
    # What Elasticsearch gives back: numbers as JSON numbers, times as the strings we sent.
    indexed = {**source, "price": 12.5, "rating_avg": 4.5, "live": True, "review_state": {}}
    assert product_hash(source) == product_hash(indexed)
    assert source["updated_at"] == "2025-01-01T12:00:00+00:00"


def test_hash_sees_every_indexed_field() -> None:
    base = {**product_fields(ROW), **summary_of([4])}
    for field, value in [("name", "Cup"), ("price", 12.51), ("review_count", 2), ("stock", 5)]:
        assert product_hash(base) != product_hash({**base, field: value})
    assert review_hash({"id": 1, "text": "a"}) != review_hash({"id": 1, "text": "b"})


def test_summary_of_no_reviews() -> None:
    assert summary_of([]) == {"review_count": 0, "rating_avg": None}


def test_operations_version_reviews_externally_and_retry_updates() -> None:
    lines = operations(
        [
            Action(op="index", index="reviews", id="1", body={"id": 1}, version=42),
            Action(op="index", index="products", id="2", body={}, if_seq_no=5, if_primary_term=1),
            Action(op="create", index="products", id="3", body={}),
        ]
    )
    assert lines[0] == {
        "index": {"_index": "reviews", "_id": "1", "version": 42, "version_type": "external"}
    }
    assert lines[2] == {
        "index": {"_index": "products", "_id": "2", "if_seq_no": 5, "if_primary_term": 1}
    }
    assert lines[4] == {"create": {"_index": "products", "_id": "3"}}


def test_classify() -> None:
    versioned = Action(op="index", index="r", id="1", body={}, version=3)
    cas = Action(op="index", index="p", id="1", body={}, if_seq_no=1, if_primary_term=1)
    assert classify(versioned, {"status": 201, "result": "created"})[0] is Outcome.WRITTEN
    conflict = {"status": 409, "error": {"type": "version_conflict_engine_exception"}}
    assert classify(versioned, conflict)[0] is Outcome.STALE
    assert classify(cas, conflict)[0] is Outcome.CONFLICT
    assert classify(versioned, {"status": 429})[0] is Outcome.RETRY
    bad = {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}
    assert classify(versioned, bad) == (Outcome.REJECTED, "mapper_parsing_exception: x")


def test_index_names_follow_the_prefix() -> None:
    index = spec("products", "t1-")
    assert index.alias == "t1-products"
    assert index.versioned(2) == "t1-products-v2"
    assert index.version_of("t1-products-v12") == 12
    assert index.version_of("t1-products-v1-old") is None
    assert index.template()["index_patterns"] == ["t1-products-v*"]
    assert index.template()["template"]["settings"]["number_of_shards"] == 1
