"""Reindex: build the next version of a declared index from its source, then swap the alias.

1. Create `<alias>-v<n+1>` (the template, generated from the declaration, gives it settings and
   mappings).
2. Load it from a snapshot of the source database at WAL position W, with the same
   ordering rules as the workers (plain indexes: external version W; indexes with summaries:
   merged with every component at W), so anything the workers write with a newer LSN wins over
   it. A document of the current index whose row is not in the snapshot gets a dead marker at
   W, and so does a summarised child the snapshot no longer has: the source says it was gone at
   W, so a stale copy cannot carry over in step 3, while a row re-inserted after W (a newer
   LSN) still does.
3. Copy the current index into it, versions intact (plain: each document with its own version,
   externally; with summaries: every document merged): changes the workers applied while the
   snapshot was loading, and dead markers, carry over; what the snapshot has newer wins.
   Documents of an older layout (without `hw_lsn`) are not copied: the snapshot replaces them.
4. Swap the alias in one `_aliases` call: searches answer from the old index until that
   instant and from the new one after it.
5. Block writes to the old index (the block waits for writes in flight; later writes are
   refused, and the workers resolve the alias again), then copy once more, for writes that
   landed on the old index just before the swap.
The old index is kept, read-only, for a rollback unless `drop_old`.

The snapshot's position W is chosen so that the snapshot holds every change at or below it
(`source.consistent_snapshot`): a transaction that wrote before the snapshot and committed
after it would otherwise have its changes lose to the snapshot for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from headwater.settings import ElasticsearchSettings
from indexers import source
from indexers.bulk import Action, AsyncBulkWriter, BulkResult, write_sync
from indexers.catalog import IndexSpec, async_client, ensure_index, versions
from indexers.documents import CHILDREN, LIVE, LSN, Params, Shaper
from indexers.merge import AsyncMerger, MergeRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexResult:
    alias: str
    old_index: str
    new_index: str
    snapshot_lsn: int
    loaded: int
    copied: int


@dataclass
class Snapshot:
    """The source at one WAL position, as writes to the new index."""

    lsn: int
    actions: list[Action]
    merges: list[MergeRequest]
    # parent id -> summary -> child ids present in the snapshot
    children: dict[str, dict[str, set[str]]]
    # Written by merging (an index with summaries), not with external versions.
    merged: bool = False

    @property
    def ids(self) -> set[str]:
        return {a.id for a in self.actions} | {
            m.id for m in self.merges if m.params.lsn is not None
        }


def take_snapshot(conn: Any, shaper: Shaper, new: str, lsn: int) -> Snapshot:
    declaration = shaper.declaration
    if not declaration.summaries:
        actions = [
            Action(
                op="index",
                index=new,
                id=shaped.id,
                version=lsn,
                body={**shaped.fields, LIVE: True, LSN: lsn},
            )
            for shaped in source.rows(conn, shaper)
        ]
        return Snapshot(lsn, actions, [], {})
    per_summary = {
        s.name: source.children(conn, shaper.child(s.name)) for s in declaration.summaries
    }
    present: dict[str, dict[str, set[str]]] = {}
    merges = []

    def child_params(parent: str) -> dict[str, dict[str, list[Any]]]:
        out = {}
        for name, groups in per_summary.items():
            entries = groups.pop(parent, {})
            present.setdefault(parent, {})[name] = set(entries)
            out[name] = {cid: [lsn, values] for cid, values in entries.items()}
        return out

    for shaped in source.rows(conn, shaper):
        params = Params(lsn=lsn, live=True, fields=shaped.fields, children=child_params(shaped.id))
        merges.append(MergeRequest(shaped.id, params))
    # Children whose parent row is gone still count once it comes back (same key re-inserted).
    orphans = {parent for groups in per_summary.values() for parent in groups}
    for parent in orphans:
        merges.append(MergeRequest(parent, Params(children=child_params(parent))))
    return Snapshot(lsn, [], merges, present, merged=True)


def absent_ids(current: Iterable[str], snapshot: Iterable[str]) -> list[str]:
    """Ids of the current index that the source snapshot does not have, in the current order."""
    present = set(snapshot)
    return [doc_id for doc_id in current if doc_id not in present]


def _scan(es: Elasticsearch, index: str, **query: Any) -> Iterator[dict[str, Any]]:
    yield from scan(es, index=index, query={"query": {"match_all": {}}, **query}, size=1000)


def tombstones(es: Elasticsearch, old: str, new: str, snapshot: Snapshot) -> Snapshot:
    """Dead markers at the snapshot for what the old index has and the source no longer does."""
    gone = absent_ids((hit["_id"] for hit in _scan(es, old, _source=False)), snapshot.ids)
    lsn = snapshot.lsn
    if snapshot.merged:
        merges = [MergeRequest(i, Params(lsn=lsn, live=False)) for i in gone]
        return Snapshot(lsn, [], merges, {}, merged=True)
    actions = [
        Action(op="index", index=new, id=i, version=lsn, body={LIVE: False, LSN: lsn}) for i in gone
    ]
    return Snapshot(lsn, actions, [], {})


def copy_params(
    doc: dict[str, Any], snapshot: Snapshot | None, declared: Iterable[str]
) -> Params | None:
    """A document of the old index as merge parameters; None for an older layout.

    A child entry written before the snapshot that the snapshot lacks was deleted by then: it
    comes back as deleted at the snapshot, so a reindex heals stale summaries.
    """
    if LSN not in doc:
        return None
    lsn = doc[LSN]
    fields = {f: doc[f] for f in declared if f in doc}
    children: dict[str, dict[str, list[Any]]] = {}
    for summary, entries in (doc.get(CHILDREN) or {}).items():
        kept = children.setdefault(summary, {})
        for child_id, entry in entries.items():
            kept[child_id] = list(entry)
    if snapshot is not None:
        doc_id = str(doc.get("_id"))
        present = snapshot.children.get(doc_id, {})
        for summary, entries in children.items():
            for child_id, entry in entries.items():
                if entry[0] <= snapshot.lsn and child_id not in present.get(summary, set()):
                    entries[child_id] = [snapshot.lsn, None]
    return Params(
        lsn=lsn if lsn >= 0 else None,
        live=bool(doc.get(LIVE)),
        fields=fields if lsn >= 0 else None,
        children=children,
    )


def _merge(
    settings: ElasticsearchSettings, index: IndexSpec, new: str, requests: list[MergeRequest]
) -> BulkResult:
    async def go() -> BulkResult:
        es = async_client(settings, timeout_s=120)
        total = BulkResult()
        try:
            writer = AsyncBulkWriter(es, require_alias=False)
            merger = AsyncMerger(es, writer, index.declaration)
            for start in range(0, len(requests), 1000):
                total.add(await merger.merge(new, requests[start : start + 1000]))
        finally:
            await es.close()
        return total

    return asyncio.run(go())


def _copy(
    settings: ElasticsearchSettings,
    es: Elasticsearch,
    index: IndexSpec,
    old: str,
    new: str,
    snapshot: Snapshot | None,
) -> int:
    if index.declaration.summaries:
        declared = index.declaration.fields
        requests = []
        for hit in _scan(es, old):
            params = copy_params({**hit["_source"], "_id": hit["_id"]}, snapshot, declared)
            if params is not None:
                requests.append(MergeRequest(hit["_id"], params))
        _merge(settings, index, new, requests)
        return len(requests)
    actions = [
        Action(op="index", index=new, id=hit["_id"], body=hit["_source"], version=hit["_version"])
        for hit in _scan(es, old, version=True)
        if LSN in hit["_source"]
    ]
    write_sync(es, actions)
    return len(actions)


def _write(
    settings: ElasticsearchSettings,
    es: Elasticsearch,
    index: IndexSpec,
    new: str,
    snapshot: Snapshot,
) -> None:
    if snapshot.actions:
        write_sync(es, snapshot.actions)
    if snapshot.merges:
        _merge(settings, index, new, snapshot.merges)


def reindex(
    settings: ElasticsearchSettings,
    dsn: str,
    es: Elasticsearch,
    index: IndexSpec,
    shaper: Shaper,
    drop_old: bool = False,
    progress: Callable[[str], None] = log.info,
) -> ReindexResult:
    old = ensure_index(es, index)
    new = index.versioned(max(versions(es, index), default=1) + 1)
    es.indices.create(index=new)
    progress(f"created {new}")
    with source.connect(dsn) as conn, source.consistent_snapshot(conn, progress=progress) as lsn:
        snapshot = take_snapshot(conn, shaper, new, lsn)
    loaded = len(snapshot.actions) + sum(1 for m in snapshot.merges if m.params.lsn is not None)
    dead = tombstones(es, old, new, snapshot)
    _write(settings, es, index, new, snapshot)
    _write(settings, es, index, new, dead)
    progress(f"loaded {loaded} documents from the source snapshot at LSN {lsn}")
    gone = len(dead.actions) + len(dead.merges)
    if gone:
        progress(f"{gone} documents of {old} have no row in the source: marked deleted")
    copied = _copy(settings, es, index, old, new, snapshot)
    es.indices.refresh(index=new)
    es.indices.update_aliases(
        actions=[
            {"remove": {"index": old, "alias": index.alias}},
            {"add": {"index": new, "alias": index.alias, **index.alias_body()}},
        ]
    )
    progress(f"alias {index.alias} now points to {new} (was {old})")
    # A write that resolved the alias just before the swap may still land in the old index.
    # The write block waits for every write in flight on its shards and refuses later ones
    # (whose writers resolve the alias again), so the last copy misses nothing.
    es.indices.add_block(index=old, block="write")
    copied += _copy(settings, es, index, old, new, snapshot)
    es.indices.refresh(index=new)
    if drop_old:
        es.indices.delete(index=old)
        progress(f"dropped {old}")
    return ReindexResult(index.alias, old, new, lsn, loaded, copied)


@dataclass(frozen=True)
class RepairResult:
    alias: str
    snapshot_lsn: int
    written: int
    # Documents already as the snapshot has them, or moved past it by a newer change.
    unchanged: int


def repair(
    settings: ElasticsearchSettings,
    dsn: str,
    es: Elasticsearch,
    index: IndexSpec,
    shaper: Shaper,
    ids: Iterable[str],
    progress: Callable[[str], None] = log.info,
) -> RepairResult:
    """Rewrite documents `ids` from a consistent snapshot of the source, in place, with the
    ordering rules of a reindex: a change newer than the snapshot still wins over it, and a
    summarised child the document counts but the snapshot does not have is marked deleted."""
    wanted = set(ids)
    with source.connect(dsn) as conn, source.consistent_snapshot(conn, progress=progress) as lsn:
        snapshot = take_snapshot(conn, shaper, index.alias, lsn) if wanted else None
    if snapshot is None:
        return RepairResult(index.alias, lsn, 0, 0)
    if not snapshot.merged:
        actions = [a for a in snapshot.actions if a.id in wanted]
        gone = sorted(wanted - {a.id for a in actions})
        actions += [
            Action(op="index", index=index.alias, id=i, version=lsn, body={LIVE: False, LSN: lsn})
            for i in gone
        ]
        written = write_sync(es, actions)
        return RepairResult(index.alias, lsn, written.written, written.stale)
    requests = [m for m in snapshot.merges if m.id in wanted]
    absent = wanted - {m.id for m in requests if m.params.lsn is not None}
    requests += [MergeRequest(i, Params(lsn=lsn, live=False)) for i in sorted(absent)]
    # Children the documents hold that the snapshot lacks, written before it: deleted by then.
    for doc in es.mget(index=index.alias, ids=sorted(wanted)).body["docs"]:
        if doc.get("found"):
            current = {**doc["_source"], "_id": doc["_id"]}
            params = copy_params(current, snapshot, index.declaration.fields)
            if params is not None:
                requests.append(MergeRequest(doc["_id"], params))
    merged = _merge(settings, index, index.alias, requests)
    return RepairResult(index.alias, lsn, merged.written, merged.stale)
