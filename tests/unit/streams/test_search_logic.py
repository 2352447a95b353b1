"""The pure search planning: one topic's change events into writes for every declared use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headwater.models.cdc import decode_change
from headwater.pipelines.declarations import Pipelines
from headwater.pipelines.types import PLACEHOLDER
from indexers.documents import LIVE, LSN, Shaper
from streams.common import Record, decode_records
from streams.search.logic import Consumer, plan

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


@pytest.fixture(scope="module")
def products(shop: Pipelines) -> Consumer:
    return Consumer(Shaper(shop.index("products")), "products")


@pytest.fixture(scope="module")
def reviews(shop: Pipelines) -> Consumer:
    return Consumer(Shaper(shop.index("reviews")), "reviews")


@pytest.fixture(scope="module")
def review_summary(shop: Pipelines) -> Consumer:
    return Consumer(Shaper(shop.index("products")), "products", "reviews")


def test_a_row_of_an_index_with_summaries_is_a_merge_at_its_lsn(products: Consumer) -> None:
    planned = plan([products], changes(record("products", PRODUCT_ROW, 100)))
    assert not planned.failures and not planned.actions
    (request,) = planned.merges["products"]
    assert request.id == "7" and request.params.lsn == 100 and request.params.live
    assert request.params.fields is not None
    assert request.params.fields["price"] == 59.9
    assert request.params.fields["created_at"] == "2025-01-01T10:00:00.000001+00:00"


def test_a_burst_to_one_row_coalesces_to_the_highest_lsn(products: Consumer) -> None:
    rows = [record("products", {**PRODUCT_ROW, "stock": s}, 100 + s, offset=s) for s in range(5)]
    planned = plan([products], changes(*reversed(rows)))
    (request,) = planned.merges["products"]
    assert request.params.lsn == 104 and request.params.fields["stock"] == 4  # type: ignore[index]


def test_only_a_row_whose_newest_change_is_an_insert_is_hinted_new(products: Consumer) -> None:
    inserted = plan([products], changes(record("products", PRODUCT_ROW, 100, "c")))
    assert [r.new for r in inserted.merges["products"]] == [True]
    updated = plan(
        [products],
        changes(
            record("products", PRODUCT_ROW, 100, "c"),
            record("products", {**PRODUCT_ROW, "stock": 1}, 101, "u", offset=1),
        ),
    )
    assert [r.new for r in updated.merges["products"]] == [False]


def test_combined_requests_keep_the_new_hint_of_any_of_them() -> None:
    from indexers.documents import Params
    from indexers.merge import MergeRequest, combine

    children = Params(children={"reviews": {"70": [90, [4]]}})
    combined = combine([MergeRequest("7", children), MergeRequest("7", Params(lsn=100), new=True)])
    assert combined["7"].new and combined["7"].params.lsn == 100


def test_a_deleted_row_is_a_dead_marker(products: Consumer, reviews: Consumer) -> None:
    planned = plan([products], changes(record("products", PRODUCT_ROW, 200, "d", deleted=True)))
    (request,) = planned.merges["products"]
    assert request.params.lsn == 200 and request.params.live is False
    planned = plan([reviews], changes(record("reviews", REVIEW_ROW, 300, "d", deleted=True)))
    (action,) = planned.actions
    assert action.version == 300 and action.body[LIVE] is False and action.body["id"] == 70


def test_a_row_without_summaries_is_written_with_its_lsn_as_external_version(
    reviews: Consumer,
) -> None:
    planned = plan([reviews], changes(record("reviews", REVIEW_ROW, 150)))
    (action,) = planned.actions
    assert (action.op, action.index, action.id, action.version) == ("index", "reviews", "70", 150)
    assert action.body["text"] == "Good" and action.body[LIVE] is True and action.body[LSN] == 150


def test_a_row_of_the_wrong_shape_is_dead_lettered_naming_the_index(
    products: Consumer, review_summary: Consumer
) -> None:
    bad = record("products", {**PRODUCT_ROW, "price": "cheap"}, 100)
    planned = plan([products], changes(bad))
    (letter,) = planned.failures
    assert (letter.consumer, letter.stage) == ("search:products", "shape")
    assert "price" in letter.error
    missing = {k: v for k, v in REVIEW_ROW.items() if k != "product_id"}
    planned = plan([review_summary], changes(record("reviews", missing, 5)))
    (letter,) = planned.failures
    assert (letter.consumer, letter.stage) == ("search:products.reviews", "shape")
    assert "product_id" in letter.error


def test_a_child_row_becomes_an_entry_of_its_parents_summary(review_summary: Consumer) -> None:
    planned = plan(
        [review_summary],
        changes(
            record("reviews", REVIEW_ROW, 10),
            record("reviews", {**REVIEW_ROW, "id": 71, "rating": 2}, 11),
            record("reviews", {**REVIEW_ROW, "id": 72, "product_id": 8}, 12),
        ),
    )
    merges = {m.id: m.params for m in planned.merges["products"]}
    assert set(merges) == {"7", "8"}
    assert merges["7"].children == {"reviews": {"70": [10, [4]], "71": [11, [2]]}}
    assert merges["7"].lsn is None  # the row component is untouched


def test_a_deleted_child_retracts_its_entry(review_summary: Consumer) -> None:
    planned = plan([review_summary], changes(record("reviews", REVIEW_ROW, 20, "d", deleted=True)))
    (merge,) = planned.merges["products"]
    assert merge.params.children == {"reviews": {"70": [20, None]}}


def test_one_topic_feeds_every_use_of_it(reviews: Consumer, review_summary: Consumer) -> None:
    planned = plan([reviews, review_summary], changes(record("reviews", REVIEW_ROW, 30)))
    assert len(planned.actions) == 1 and len(planned.merges["products"]) == 1


def test_an_unchanged_toasted_column_is_kept_not_blanked(products: Consumer) -> None:
    toasted = {**PRODUCT_ROW, "description": PLACEHOLDER}
    planned = plan([products], changes(record("products", toasted, 40)))
    (request,) = planned.merges["products"]
    assert request.params.keep == ("description",)
    assert "description" not in (request.params.fields or {})
    # An older change of the same batch carries the value: it fills in.
    planned = plan(
        [products],
        changes(record("products", PRODUCT_ROW, 39), record("products", toasted, 40, offset=1)),
    )
    (request,) = planned.merges["products"]
    assert request.params.keep == () and request.params.fields["description"] == "Light"  # type: ignore[index]


def test_decode_splits_tombstones_and_malformed() -> None:
    good = record("products", PRODUCT_ROW, 1)
    tombstone = Record("shop.public.products", 0, 1, b'{"id": 7}', None)
    junk = Record("shop.public.products", 0, 2, b'{"id": 7}', b"not json")
    decoded = decode_records([good, tombstone, junk])
    assert len(decoded.changes) == 1 and decoded.tombstones == 1
    # An undecodable record fails for every consumer of its topic: one letter each.
    letters = decoded.letters(["search:reviews", "search:products.reviews"])
    assert [(x.consumer, x.offset, x.stage) for x in letters] == [
        ("search:reviews", 2, "decode"),
        ("search:products.reviews", 2, "decode"),
    ]
    assert all("not JSON" in x.error for x in letters)


def test_every_record_a_write_brings_names_its_consumer(
    products: Consumer, review_summary: Consumer
) -> None:
    """A rejected write must dead-letter every record in it, each for its own consumer: the
    children of one parent and the parent's own row are merged into one write."""
    from indexers.merge import combine
    from streams.search.agents import _origins

    row = record("products", PRODUCT_ROW, 100, offset=1)
    first = record("reviews", REVIEW_ROW, 101, offset=2)
    second = record("reviews", {**REVIEW_ROW, "id": 71}, 102, offset=3)
    planned = plan([products], changes(row))
    planned.add(plan([review_summary], changes(first, second)))
    (merged,) = combine(planned.merges["products"]).values()
    assert [(o.consumer, o.record.offset) for o in _origins(merged)] == [
        ("search:products", 1),
        ("search:products.reviews", 2),
        ("search:products.reviews", 3),
    ]
