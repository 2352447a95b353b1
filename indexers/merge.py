"""Writing product documents: read, merge (`indexers.documents.merge_product`), compare-and-set.

Two streams (product rows and review ratings) and possibly several workers write the same
product document, so each write is a read-modify-write: `mget` the current documents of a batch
(realtime, dead markers included: a get by id ignores the alias filter), merge in Python, write
with `if_seq_no`/`if_primary_term` (or `create` if there was none) and, for the documents whose
write lost a race, read and merge again. Because the merge is idempotent and ordered per
component by LSN, retrying never double-counts and never goes back in time.

The merger remembers what it last wrote (document, `_seq_no`, `_primary_term`) for the most
recently written products and merges into that instead of reading: in the common case (one
writer per product) the compare-and-set succeeds and a batch costs one request. If anyone else
wrote meanwhile, the compare-and-set fails, the entry is dropped and the document is read.
Entries are keyed by the concrete index behind the alias, resolved per batch, so after a
`reindex` swap the new index's documents are read, never assumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch

from indexers.bulk import Action, AsyncBulkWriter, BulkResult
from indexers.documents import merge_product

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeRequest:
    """Bring this product document up to date with `params` (see `merge_params`)."""

    product_id: int
    params: dict[str, Any]
    where: str = ""
    key: str = ""
    origin: Any = None


def combine(requests: Iterable[MergeRequest]) -> dict[int, MergeRequest]:
    """One request per product: the newest product component and each review's newest entry."""
    out: dict[int, MergeRequest] = {}
    for request in requests:
        kept = out.get(request.product_id)
        if kept is None:
            out[request.product_id] = request
            continue
        product = kept.params.get("product")
        new_product = request.params.get("product")
        if new_product is not None and (product is None or new_product["lsn"] >= product["lsn"]):
            product = new_product
        reviews = dict(kept.params.get("reviews") or {})
        for review_id, entry in (request.params.get("reviews") or {}).items():
            if review_id not in reviews or entry[0] >= reviews[review_id][0]:
                reviews[review_id] = entry
        out[request.product_id] = MergeRequest(
            request.product_id,
            {"product": product, "reviews": reviews or None},
            request.where,
            request.key,
            request.origin,
        )
    return out


def plan_writes(
    index: str, requests: dict[int, MergeRequest], found: dict[int, dict[str, Any]]
) -> tuple[list[Action], int]:
    """Compare-and-set writes for the documents that change, and how many did not change.

    `found` maps a product id to its current `_source`, `_seq_no` and `_primary_term`.
    """
    actions, unchanged = [], 0
    for product_id, request in requests.items():
        current = found.get(product_id)
        merged = merge_product(current["_source"] if current else None, request.params)
        if merged is None:
            unchanged += 1
            continue
        common: dict[str, Any] = {"index": index, "id": str(product_id), "body": merged,
                  "where": request.where, "key": request.key, "origin": request}  # fmt: skip
        if current is None:
            actions.append(Action(op="create", **common))
        else:
            actions.append(
                Action(
                    op="index",
                    if_seq_no=current["_seq_no"],
                    if_primary_term=current["_primary_term"],
                    **common,
                )
            )
    return actions, unchanged


class AsyncProductMerger:
    def __init__(
        self, es: AsyncElasticsearch, writer: AsyncBulkWriter, cache_size: int = 50_000
    ) -> None:
        self.es = es
        self.writer = writer
        self.cache_size = cache_size
        self._known: dict[tuple[str, int], dict[str, Any]] = {}

    async def _concrete(self, index: str) -> str:
        try:
            names = list((await self.es.indices.get_alias(name=index)).body)
        except (TransportConnectionError, ConnectionTimeout, ApiError):
            return index
        return names[0] if len(names) == 1 else index

    def _remember(self, result: BulkResult) -> None:
        for action, item in result.acknowledged:
            if "_seq_no" not in item:
                continue
            key = (item["_index"], int(action.id))
            self._known.pop(key, None)
            self._known[key] = {
                "_source": action.body,
                "_seq_no": item["_seq_no"],
                "_primary_term": item["_primary_term"],
            }
        while len(self._known) > self.cache_size:
            del self._known[next(iter(self._known))]

    async def _current(self, index: str, ids: list[int]) -> dict[int, dict[str, Any]]:
        attempt = 0
        while True:
            try:
                response = await self.es.mget(index=index, ids=[str(i) for i in ids])
                break
            except (TransportConnectionError, ConnectionTimeout, ApiError) as exc:
                attempt += 1
                delay = self.writer.policy.delay(min(attempt, 10))
                log.warning("reading %d product documents failed (%s); retry in %.2fs",
                            len(ids), exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
        return {int(doc["_id"]): doc for doc in response.body["docs"] if doc.get("found")}

    async def merge(self, index: str, requests: Iterable[MergeRequest]) -> BulkResult:
        total = BulkResult()
        pending = combine(requests)
        concrete = await self._concrete(index) if pending else index
        while pending:
            found = {
                pid: self._known[(concrete, pid)]
                for pid in pending
                if (concrete, pid) in self._known
            }
            unknown = [pid for pid in pending if pid not in found]
            if unknown:
                found.update(await self._current(index, unknown))
            actions, unchanged = plan_writes(index, pending, found)
            total.stale += unchanged
            result = await self.writer.write(actions)
            self._remember(result)
            conflicts, result.conflicts = result.conflicts, []
            result.acknowledged = []
            total.add(result)
            for action in conflicts:
                self._known.pop((concrete, int(action.id)), None)
            pending = {int(a.id): pending[int(a.id)] for a in conflicts}
        return total
