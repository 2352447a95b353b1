"""What a search document is: shop rows shaped into documents, their merge rule, their hash.

Pure: no I/O. The stream workers, `reindex` and `verify` all shape documents here, so the
index and the reconciliation can never disagree about what a document should contain.

Ordering. Every write carries the source position (the change's WAL LSN) of what it brings.
- A review document is written with Elasticsearch external versioning, version = LSN: a
  duplicate or older event gets a 409 and is skipped. A deleted review becomes a dead marker
  (`live: false`, same versioning) instead of an Elasticsearch delete, so the "deleted at LSN
  L" fact never expires (a real delete's version tombstone is forgotten after
  `index.gc_deletes`), and `reindex` can copy it with the versions intact.
- A product document is fed by two streams: its own row (products topic) and its reviews'
  ratings (reviews topic, keyed by review id, so on other partitions and other workers).
  Elasticsearch keeps one version per document, which cannot order two independent streams,
  so the document keeps one version per component instead: `product_lsn` for the row and
  `review_state[review_id] = [lsn, rating|null]` for each review. Every write goes through
  `merge_product`: a component is replaced only by a newer LSN (the external-versioning rule
  applied per component), and the summary (`review_count`, `rating_avg`) is recomputed from
  `review_state` in the same write. The merge is commutative and idempotent, so duplicates,
  reordering and replays after a crash converge to the same document; concurrent workers are
  serialised by writing with `if_seq_no`/`if_primary_term` (compare-and-set) and merging again
  on a conflict (`indexers.merge`). (The local Elasticsearch ships without the painless module,
  so the merge runs in the worker, not as a script.) A deleted product is a dead marker too.
Searches go through aliases filtered on `live: true`, so dead markers are never seen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from headwater.models.shop import Product, Review

PRODUCT_FIELDS = (
    "id", "sku", "name", "description", "category", "brand", "price", "stock",
    "created_at", "updated_at",
)  # fmt: skip
PRODUCT_SUMMARY_FIELDS = ("review_count", "rating_avg")
REVIEW_FIELDS = ("id", "product_id", "customer_id", "rating", "text", "created_at", "updated_at")


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def product_fields(row: Product) -> dict[str, Any]:
    """The searchable fields of a product row (its review summary is merged in separately)."""
    return {
        "id": row.id,
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "category": row.category,
        "brand": row.brand,
        # A JSON number for clients and range queries; `verify` compares it to the cent.
        "price": float(row.price),
        "stock": row.stock,
        "created_at": _utc_iso(row.created_at),
        "updated_at": _utc_iso(row.updated_at),
    }


def review_document(row: Review) -> dict[str, Any]:
    return {
        "id": row.id,
        "product_id": row.product_id,
        "customer_id": row.customer_id,
        "rating": row.rating,
        "text": row.body,
        "created_at": _utc_iso(row.created_at),
        "updated_at": _utc_iso(row.updated_at),
        "live": True,
    }


def dead_review(review_id: int, product_id: int | None) -> dict[str, Any]:
    return {"id": review_id, "product_id": product_id, "live": False}


def merge_product(
    current: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The product document after applying `params` (see `merge_params`) to `current`.

    None when nothing changes (the change is a duplicate or older than what is there).
    """
    doc: dict[str, Any] = dict(current) if current else {}
    changed = not current
    doc.setdefault("product_lsn", -1)
    doc.setdefault("live", False)
    state: dict[str, list[Any]] = {k: list(v) for k, v in (doc.get("review_state") or {}).items()}
    product = params.get("product")
    if product is not None and product["lsn"] > doc["product_lsn"]:
        doc["product_lsn"] = product["lsn"]
        doc["live"] = product["live"]
        doc.update(product.get("fields") or {})
        changed = True
    for review_id, entry in (params.get("reviews") or {}).items():
        kept = state.get(review_id)
        if kept is None or entry[0] > kept[0]:
            state[review_id] = list(entry)
            changed = True
    if not changed:
        return None
    doc["review_state"] = state
    doc.update(summary_of([rating for _, rating in state.values() if rating is not None]))
    return doc


def merge_params(
    *,
    product: Mapping[str, Any] | None = None,
    product_lsn: int | None = None,
    product_live: bool = True,
    reviews: Mapping[int, tuple[int, int | None]] | None = None,
) -> dict[str, Any]:
    """Parameters of MERGE_PRODUCT: a product component and/or review components."""
    params: dict[str, Any] = {"product": None, "reviews": None}
    if product_lsn is not None:
        params["product"] = {
            "lsn": product_lsn,
            "live": product_live,
            "fields": dict(product) if product is not None else None,
        }
    if reviews:
        params["reviews"] = {str(rid): [lsn, rating] for rid, (lsn, rating) in reviews.items()}
    return params


def summary_of(ratings: list[int]) -> dict[str, Any]:
    """The review summary of a product, as MERGE_PRODUCT computes it."""
    n = len(ratings)
    return {"review_count": n, "rating_avg": (sum(ratings) / n) if n else None}


def _canonical_value(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "price":
        return f"{Decimal(str(value)):.2f}"
    if field == "rating_avg":
        return f"{float(value):.4f}"
    if field in ("created_at", "updated_at"):
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return _utc_iso(parsed)
    if isinstance(value, Decimal):
        return str(value)
    return value


def content_hash(doc: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """A digest of the indexed fields of a document, the same for a source row and its doc."""
    canonical = {f: _canonical_value(f, doc.get(f)) for f in fields}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def product_hash(doc: Mapping[str, Any]) -> str:
    return content_hash(doc, PRODUCT_FIELDS + PRODUCT_SUMMARY_FIELDS)


def review_hash(doc: Mapping[str, Any]) -> str:
    return content_hash(doc, REVIEW_FIELDS)
