"""Reindex: build the next version of an index from the source of truth, then swap the alias.

1. Create `<alias>-v<n+1>` (the template gives it settings and mappings).
2. Load it from a snapshot of the source database taken at WAL position W, with the same
   ordering rules as the workers (reviews: external version W; products: merged with every
   component at W), so anything the workers write with a newer LSN wins over it. A document
   of the current index whose row is not in the snapshot gets a dead marker at W: the source
   says the row was gone at W, so a stale live copy cannot carry over in step 3, while a row
   re-inserted after W (a newer LSN) still does.
3. Copy the current index into it, versions intact (reviews: each document with its own
   version, externally; products: every document merged): changes the workers applied while
   the snapshot was loading, and dead markers, carry over; what the snapshot has newer wins.
4. Swap the alias in one `_aliases` call: searches answer from the old index until that
   instant and from the new one after it.
5. Copy once more, for writes that landed on the old index just before the swap.
The old index is kept (for a rollback) unless `drop_old`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from headwater.settings import Settings
from indexers import source
from indexers.bulk import Action, AsyncBulkWriter, write_sync
from indexers.catalog import IndexSpec, async_client, ensure_index, versions
from indexers.documents import PRODUCT_FIELDS, dead_review, merge_params, product_fields
from indexers.merge import AsyncProductMerger, MergeRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexResult:
    alias: str
    old_index: str
    new_index: str
    snapshot_lsn: int
    loaded: int
    copied: int


def _review_snapshot(index: str, docs: Iterable[dict[str, Any]], lsn: int) -> Iterator[Action]:
    for doc in docs:
        yield Action(op="index", index=index, id=str(doc["id"]), body=doc, version=lsn)


def _product_snapshot(conn: Any, lsn: int) -> Iterator[MergeRequest]:
    ratings = source.review_ratings(conn)
    for product in source.product_rows(conn):
        reviews = {rid: (lsn, rating) for rid, rating in ratings.pop(product.id, {}).items()}
        params = merge_params(product=product_fields(product), product_lsn=lsn, reviews=reviews)
        yield MergeRequest(product.id, params)
    # Reviews whose product row is gone still count once it comes back (same key re-inserted).
    for product_id, orphans in ratings.items():
        reviews = {rid: (lsn, rating) for rid, rating in orphans.items()}
        yield MergeRequest(product_id, merge_params(reviews=reviews))


def absent_ids(current: Iterable[str], snapshot: Iterable[str]) -> list[str]:
    """Ids of the current index that the source snapshot does not have, in the current order."""
    present = set(snapshot)
    return [doc_id for doc_id in current if doc_id not in present]


def _ids(es: Elasticsearch, index: str, fields: list[str]) -> dict[str, dict[str, Any]]:
    query: dict[str, Any] = {"query": {"match_all": {}}, "_source": fields or False}
    return {hit["_id"]: hit.get("_source") or {} for hit in scan(es, index=index, query=query)}


def _product_tombstones(
    es: Elasticsearch, old: str, requests: list[MergeRequest], lsn: int
) -> list[MergeRequest]:
    rows = [str(r.product_id) for r in requests if r.params["product"] is not None]
    params = merge_params(product_lsn=lsn, product_live=False)
    return [MergeRequest(int(i), params) for i in absent_ids(_ids(es, old, []), rows)]


def _review_tombstones(
    es: Elasticsearch, old: str, new: str, actions: list[Action], lsn: int
) -> list[Action]:
    current = _ids(es, old, ["product_id"])
    return [
        Action(
            op="index",
            index=new,
            id=i,
            body=dead_review(int(i), current[i].get("product_id")),
            version=lsn,
        )
        for i in absent_ids(current, (a.id for a in actions))
    ]


def _product_copies(es: Elasticsearch, old: str) -> Iterator[MergeRequest]:
    for hit in scan(es, index=old, query={"query": {"match_all": {}}}, size=1000):
        doc = hit["_source"]
        lsn = doc.get("product_lsn", -1)
        fields = {f: doc[f] for f in PRODUCT_FIELDS if f in doc}
        reviews = {int(rid): (v[0], v[1]) for rid, v in (doc.get("review_state") or {}).items()}
        params = merge_params(
            product=fields if lsn >= 0 else None,
            product_lsn=lsn if lsn >= 0 else None,
            product_live=bool(doc.get("live")),
            reviews=reviews,
        )
        yield MergeRequest(int(hit["_id"]), params)


def _merge(settings: Settings, index: str, requests: list[MergeRequest]) -> None:
    async def go() -> None:
        es = async_client(settings.elasticsearch, timeout_s=120)
        try:
            merger = AsyncProductMerger(es, AsyncBulkWriter(es, require_alias=False))
            for start in range(0, len(requests), 1000):
                await merger.merge(index, requests[start : start + 1000])
        finally:
            await es.close()

    asyncio.run(go())


def _copy(settings: Settings, es: Elasticsearch, index: IndexSpec, old: str, new: str) -> int:
    if index.name == "products":
        copies = list(_product_copies(es, old))
        _merge(settings, new, copies)
        return len(copies)
    actions = [
        Action(op="index", index=new, id=hit["_id"], body=hit["_source"], version=hit["_version"])
        for hit in scan(es, index=old, query={"query": {"match_all": {}}, "version": True})
    ]
    write_sync(es, actions)
    return len(actions)


def reindex(
    settings: Settings,
    es: Elasticsearch,
    index: IndexSpec,
    drop_old: bool = False,
    progress: Callable[[str], None] = log.info,
) -> ReindexResult:
    old = ensure_index(es, index)
    new = index.versioned(max(versions(es, index), default=1) + 1)
    es.indices.create(index=new)
    progress(f"created {new}")
    with source.connect(settings.postgres.dsn()) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        lsn = source.snapshot_lsn(conn)
        if index.name == "reviews":
            reviews = list(_review_snapshot(new, source.review_documents(conn), lsn))
            loaded = len(reviews)
        else:
            products = list(_product_snapshot(conn, lsn))
            loaded = len(products)
    if index.name == "reviews":
        dead_reviews = _review_tombstones(es, old, new, reviews, lsn)
        write_sync(es, reviews + dead_reviews)
        gone = len(dead_reviews)
    else:
        dead_products = _product_tombstones(es, old, products, lsn)
        _merge(settings, new, products + dead_products)
        gone = len(dead_products)
    progress(f"loaded {loaded} documents from the source snapshot at LSN {lsn}")
    if gone:
        progress(f"{gone} documents of {old} have no row in the source: marked deleted")
    copied = _copy(settings, es, index, old, new)
    es.indices.refresh(index=new)
    es.indices.update_aliases(
        actions=[
            {"remove": {"index": old, "alias": index.alias}},
            {"add": {"index": new, "alias": index.alias, **index.alias_body()}},
        ]
    )
    progress(f"alias {index.alias} now points to {new} (was {old})")
    copied += _copy(settings, es, index, old, new)
    es.indices.refresh(index=new)
    if drop_old:
        es.indices.delete(index=old)
        progress(f"dropped {old}")
    return ReindexResult(index.alias, old, new, lsn, loaded, copied)
