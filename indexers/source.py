"""Reading the source of truth (the shop database) as search documents, for reindex and verify."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row

from headwater.models.shop import Product, Review
from indexers.documents import product_fields, review_document, summary_of

_PRODUCTS = "SELECT * FROM products ORDER BY id"
_RATINGS = "SELECT id, product_id, rating FROM reviews ORDER BY id"
_REVIEWS = "SELECT * FROM reviews ORDER BY id"


def connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(dsn, row_factory=dict_row)


def snapshot_lsn(conn: psycopg.Connection[Any]) -> int:
    """The WAL position now, as the integer Debezium reports as `__lsn`."""
    row = conn.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn").fetchone()
    assert row is not None
    return int(row["lsn"] if isinstance(row, dict) else row[0])


def review_ratings(conn: psycopg.Connection[Any]) -> dict[int, dict[int, int]]:
    """product id -> {review id: rating} for every review."""
    out: dict[int, dict[int, int]] = {}
    for row in conn.execute(_RATINGS):
        out.setdefault(row["product_id"], {})[row["id"]] = row["rating"]
    return out


def product_rows(conn: psycopg.Connection[Any]) -> Iterator[Product]:
    with conn.cursor(name="products_scan") as cur:
        cur.execute(_PRODUCTS)
        for row in cur:
            yield Product.model_validate(row)


def review_rows(conn: psycopg.Connection[Any]) -> Iterator[Review]:
    with conn.cursor(name="reviews_scan") as cur:
        cur.execute(_REVIEWS)
        for row in cur:
            yield Review.model_validate(row)


def product_documents(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    """Each product as its search document should read (fields and review summary)."""
    ratings = review_ratings(conn)
    for product in product_rows(conn):
        yield {
            **product_fields(product),
            **summary_of(list(ratings.get(product.id, {}).values())),
        }


def review_documents(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    for review in review_rows(conn):
        yield review_document(review)
