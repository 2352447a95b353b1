"""Writing merged documents: read, merge (`indexers.documents.merge`), compare-and-set.

Several streams (a table's rows and the child rows summarised into them) and possibly several
workers write the same document, so each write is a read-modify-write: `mget` the current
documents of a batch (realtime, dead markers included: a get by id ignores the alias filter),
merge in Python, write with `if_seq_no`/`if_primary_term` (or `create` if there was none) and,
for the documents whose write lost a race, read and merge again. Because the merge is idempotent
and ordered per component by LSN, retrying never double-counts and never goes back in time.

The merger remembers what it last wrote (document, `_seq_no`, `_primary_term`) for the most
recently written documents and merges into that instead of reading: in the common case (one
writer per document) the compare-and-set succeeds and a batch costs one request. If anyone else
wrote meanwhile, the compare-and-set fails, the entry is dropped and the document is read.
Reads and writes go to the concrete index behind the alias, resolved per batch, and cache
entries are keyed by it, so a sequence number is only ever compared in the index it came from.
After a `reindex` swap the old index gets a write block: a batch that resolved it before the
swap has its writes refused (`Outcome.BLOCKED`), resolves the alias again and reads the new
index's documents, never assumed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch

from headwater.pipelines.declarations import IndexDeclaration
from indexers.bulk import Action, AsyncBulkWriter, BulkResult
from indexers.documents import Params, merge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeRequest:
    """Bring document `id` up to date with `params`."""

    id: str
    params: Params
    where: str = ""
    key: str = ""
    origin: Any = None
    # A hint that the document does not exist yet (its row was just inserted): it is written
    # with `create` without reading it first. Only a hint: if it does exist, the create
    # conflicts and the document is read and merged like any other.
    new: bool = False


def combine(requests: Iterable[MergeRequest]) -> dict[str, MergeRequest]:
    """One request per document: the newest row component and each child's newest entry."""
    out: dict[str, MergeRequest] = {}
    for request in requests:
        kept = out.get(request.id)
        if kept is None:
            params = Params(children={})
            params.absorb(request.params)
            out[request.id] = MergeRequest(
                request.id, params, request.where, request.key, request.origin, request.new
            )
            continue
        kept.params.absorb(request.params)
        out[request.id] = MergeRequest(
            request.id, kept.params, request.where, request.key,
            _origins(kept.origin, request.origin), kept.new or request.new,
        )  # fmt: skip
    return out


def _origins(kept: Any, new: Any) -> Any:
    """Both requests' origins when they are tuples (what each brings, so a rejected write can
    name every record in it), else the newer one's."""
    if isinstance(kept, tuple) and isinstance(new, tuple):
        return kept + new
    return new


def plan_writes(
    declaration: IndexDeclaration,
    index: str,
    requests: dict[str, MergeRequest],
    found: dict[str, dict[str, Any]],
    alias: str | None = None,
) -> tuple[list[Action], int]:
    """Compare-and-set writes for the documents that change, and how many did not change.

    `found` maps a document id to its current `_source`, `_seq_no` and `_primary_term`, as
    read from `index`; `alias` is the alias `index` was resolved from, if it was.
    """
    alias = alias or index
    actions, unchanged = [], 0
    for doc_id, request in requests.items():
        current = found.get(doc_id)
        merged = merge(declaration, current["_source"] if current else None, request.params)
        if merged is None:
            unchanged += 1
            continue
        common: dict[str, Any] = {
            "index": index,
            "id": doc_id,
            "body": merged,
            "where": request.where,
            "key": request.key,
            "origin": request,
        }
        if index != alias:
            common["concrete"] = True
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


class AsyncMerger:
    """Merged writes to one declared index."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        writer: AsyncBulkWriter,
        declaration: IndexDeclaration,
        cache_size: int = 50_000,
    ) -> None:
        self.es = es
        self.writer = writer
        self.declaration = declaration
        self.cache_size = cache_size
        self._known: dict[tuple[str, str], dict[str, Any]] = {}

    async def concrete(self, index: str) -> str:
        """The index behind alias `index` now (the alias itself if that cannot be told)."""
        try:
            names = list((await self.es.indices.get_alias(name=index)).body)
        except (TransportConnectionError, ConnectionTimeout, ApiError):
            return index
        return names[0] if len(names) == 1 else index

    def _remember(self, result: BulkResult) -> None:
        for action, item in result.acknowledged:
            if "_seq_no" not in item:
                continue
            key = (item["_index"], action.id)
            self._known.pop(key, None)
            self._known[key] = {
                "_source": action.body,
                "_seq_no": item["_seq_no"],
                "_primary_term": item["_primary_term"],
            }
        while len(self._known) > self.cache_size:
            del self._known[next(iter(self._known))]

    async def current(self, index: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored documents among `ids` (dead markers included), read in real time."""
        response = await self.writer.call(functools.partial(self.es.mget, index=index, ids=ids))
        return {doc["_id"]: doc for doc in response.body["docs"] if doc.get("found")}

    async def merge(
        self, index: str, requests: Iterable[MergeRequest], concrete: str | None = None
    ) -> BulkResult:
        """Bring the documents of `requests` up to date. `concrete` is the index behind the
        alias, resolved by the caller after these requests were read (concurrently with other
        work); resolved here when not given."""
        total = BulkResult()
        pending = combine(requests)
        if not pending:
            return total
        if concrete is None:
            concrete = await self.concrete(index)
        # Documents hinted new are created without a read on the first pass only.
        assumed_new = {doc_id for doc_id, request in pending.items() if request.new}
        blocked_rounds = 0
        while pending:
            found = {
                doc_id: self._known[(concrete, doc_id)]
                for doc_id in pending
                if (concrete, doc_id) in self._known
            }
            unknown = [
                doc_id for doc_id in pending if doc_id not in found and doc_id not in assumed_new
            ]
            assumed_new = set()
            if unknown:
                found.update(await self.current(concrete, unknown))
            # Read and written in the same concrete index: a sequence number read in one index
            # is meaningless in another (after a reindex swap it could even match by chance).
            actions, unchanged = plan_writes(self.declaration, concrete, pending, found, index)
            total.stale += unchanged
            result = await self.writer.write(actions)
            self._remember(result)
            conflicts, result.conflicts = result.conflicts, []
            result.acknowledged = []
            total.add(result)
            for action in conflicts:
                self._known.pop((concrete, action.id), None)
            pending = {a.id: pending[a.id] for a in conflicts}
            if result.blocked:
                # The index refuses writes: a reindex retired it (the alias has moved on) or
                # an operator blocked it (wait, as for any back-pressure).
                moved = await self.concrete(index)
                if moved == concrete:
                    blocked_rounds += 1
                    await asyncio.sleep(self.writer.rounds.delay(min(blocked_rounds, 10)))
                concrete = moved
        return total
