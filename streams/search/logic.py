"""Search indexing, pure: change events of products and reviews into bulk actions.

No Faust and no I/O here. A batch of changes is coalesced per key first (only the change with
the highest LSN of each row can matter, so a burst of updates to one row costs one write), then
shaped through `indexers.documents`, whose module docstring explains how ordering is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from headwater.models.cdc import ChangeEvent
from headwater.models.shop import Product, Review
from headwater.resilience import DeadLetter
from indexers.bulk import Action
from indexers.documents import dead_review, merge_params, product_fields, review_document
from indexers.merge import MergeRequest
from streams.common import Record

Change = tuple[Record, ChangeEvent]


@dataclass
class Planned:
    """What a batch turns into: writes, and the changes that could not be shaped."""

    actions: list[Action] = field(default_factory=list)
    merges: list[MergeRequest] = field(default_factory=list)
    failures: list[DeadLetter] = field(default_factory=list)


class _Unshapeable(ValueError):
    pass


def _row_id(change: ChangeEvent) -> int:
    raw = change.key.get("id")
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _Unshapeable(f"key must be {{'id': <integer>}}, got {change.key!r}")
    return raw


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"row field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def latest_per_key(changes: Sequence[Change], planned: Planned) -> dict[int, Change]:
    """The change with the highest LSN for each row id; a later duplicate LSN wins a tie."""
    latest: dict[int, Change] = {}
    for record, change in changes:
        try:
            row_id = _row_id(change)
        except _Unshapeable as exc:
            planned.failures.append(record.dead_letter(exc, "shape"))
            continue
        kept = latest.get(row_id)
        if kept is None or change.lsn >= kept[1].lsn:
            latest[row_id] = (record, change)
    return latest


def merge_request(product_id: int, params: dict[str, Any], record: Record) -> MergeRequest:
    return MergeRequest(product_id, params, record.where, record.key_text, record)


def plan_products(changes: Sequence[Change]) -> Planned:
    """Product changes -> one merge per product: its row (or its deletion) at its LSN."""
    planned = Planned()
    for product_id, (record, change) in latest_per_key(changes, planned).items():
        if change.deleted:
            params = merge_params(product_lsn=change.lsn, product_live=False)
        else:
            try:
                row = Product.model_validate(change.row)
            except ValidationError as exc:
                planned.failures.append(record.dead_letter(_validation_message(exc), "shape"))
                continue
            params = merge_params(product=product_fields(row), product_lsn=change.lsn)
        planned.merges.append(merge_request(product_id, params, record))
    return planned


def plan_reviews(changes: Sequence[Change], reviews_alias: str) -> Planned:
    """Review changes -> the review document (versioned by LSN) and the products' summaries.

    Each touched product gets one merge carrying `[lsn, rating]` (`rating` None when the review
    was deleted) for each of its changed reviews; the merge recomputes count and average.
    """
    planned = Planned()
    per_product: dict[int, dict[int, tuple[int, int | None]]] = {}
    last_record: dict[int, Record] = {}
    for review_id, (record, change) in latest_per_key(changes, planned).items():
        if change.deleted:
            product_id = change.row.get("product_id")
            if isinstance(product_id, bool) or not isinstance(product_id, int):
                planned.failures.append(
                    record.dead_letter(
                        "a deleted review must carry its product_id (REPLICA IDENTITY FULL)",
                        "shape",
                    )
                )
                continue
            doc, rating = dead_review(review_id, product_id), None
        else:
            try:
                row = Review.model_validate(change.row)
            except ValidationError as exc:
                planned.failures.append(record.dead_letter(_validation_message(exc), "shape"))
                continue
            product_id, doc, rating = row.product_id, review_document(row), row.rating
        planned.actions.append(
            Action(
                op="index",
                index=reviews_alias,
                id=str(review_id),
                body=doc,
                version=change.lsn,
                where=record.where,
                key=record.key_text,
                origin=record,
            )
        )
        per_product.setdefault(product_id, {})[review_id] = (change.lsn, rating)
        last_record[product_id] = record
    for product_id, reviews in per_product.items():
        params = merge_params(reviews=reviews)
        planned.merges.append(merge_request(product_id, params, last_record[product_id]))
    return planned
