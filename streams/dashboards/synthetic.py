"""Change records shaped like Debezium's (flattened JSON, `{"id":N}` keys) for tests and benchmark.

They go straight to Kafka, so a test or a benchmark run can drive the dashboards on topics of
its own without the source database and connector in the way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Record = tuple[bytes, bytes]


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def change(
    table: str,
    row: dict[str, Any],
    *,
    lsn: int,
    op: str = "c",
    deleted: bool = False,
    source_ts_ms: int | None = None,
    last_commit_lsn: int | None = None,
) -> Record:
    """A flattened change; `last_commit_lsn` adds Debezium's `sequence` (streamed changes)."""
    value = dict(row)
    value.update(
        __op=op,
        __lsn=lsn,
        __source_ts_ms=source_ts_ms if source_ts_ms is not None else lsn,
        __table=table,
        __deleted="true" if deleted else "false",
    )
    if last_commit_lsn is not None:
        value["__sequence"] = json.dumps([str(last_commit_lsn), str(lsn)])
    return _dump({"id": row["id"]}), _dump(value)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def order(
    order_id: int,
    *,
    lsn: int,
    at: datetime,
    total: str = "20.00",
    status: str = "paid",
    customer_id: int = 1,
    op: str = "c",
    deleted: bool = False,
    source_ts_ms: int | None = None,
) -> Record:
    row = {
        "id": order_id,
        "customer_id": customer_id,
        "status": status,
        "total": total,
        "created_at": iso(at),
        "updated_at": iso(at),
    }
    return change("orders", row, lsn=lsn, op=op, deleted=deleted, source_ts_ms=source_ts_ms)


def order_line(
    line_id: int,
    *,
    order_id: int,
    product_id: int,
    lsn: int,
    at: datetime,
    quantity: int = 1,
    unit_price: str = "20.00",
) -> Record:
    row = {
        "id": line_id,
        "order_id": order_id,
        "product_id": product_id,
        "quantity": quantity,
        "unit_price": unit_price,
        "created_at": iso(at),
    }
    return change("order_items", row, lsn=lsn)


def interaction(
    interaction_id: int,
    *,
    lsn: int,
    at: datetime,
    kind: str = "page_view",
    customer_id: int = 1,
    product_id: int | None = 1,
    op: str = "c",
    last_commit_lsn: int | None = None,
) -> Record:
    row = {
        "id": interaction_id,
        "customer_id": customer_id,
        "product_id": product_id,
        "kind": kind,
        "query": None,
        "occurred_at": iso(at),
    }
    return change("interactions", row, lsn=lsn, op=op, last_commit_lsn=last_commit_lsn)


def product(product_id: int, *, lsn: int, name: str, category: str, at: datetime) -> Record:
    row = {
        "id": product_id,
        "sku": f"SKU-{product_id}",
        "name": name,
        "description": "",
        "category": category,
        "brand": "Acme",
        "price": "20.00",
        "stock": 10,
        "created_at": iso(at),
        "updated_at": iso(at),
    }
    return change("products", row, lsn=lsn)
