"""Reconciling a declared index with its source table: counts and a content hash per id.

A pipeline under writes is never equal to its source at an instant: some changes are always on
their way. Each round reads the index first and the source second, so the index can only be
behind (never ahead of) what it is compared with; a difference is then either in flight or
stale. What tells them apart is movement: a document the pipeline is still bringing up to date
changes between rounds, a stale one does not. So a difference counts only once its document has
held still for `settle_s` while still differing; one whose document keeps moving until the end
(a hot row under steady writes) is reported apart, as in flight, never as stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from indexers import source
from indexers.catalog import IndexSpec
from indexers.documents import CHILDREN, LSN, Shaper, content_hash

MismatchKind = Literal["missing", "extra", "stale"]


@dataclass(frozen=True)
class Mismatch:
    id: str
    kind: MismatchKind
    source_hash: str | None
    index_hash: str | None


@dataclass
class Report:
    table: str
    index: str
    source_count: int
    index_count: int
    mismatches: list[Mismatch] = field(default_factory=list)
    # Differences whose document was still changing when verification ended.
    in_flight: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.in_flight and self.source_count == self.index_count


def reconcile(
    table: str, index: str, source_hashes: Mapping[str, str], index_hashes: Mapping[str, str]
) -> Report:
    """Missing (in the source, not the index), extra (the reverse), stale (content differs)."""
    report = Report(table, index, len(source_hashes), len(index_hashes))
    for doc_id in sorted(source_hashes.keys() | index_hashes.keys(), key=_id_order):
        ours, theirs = source_hashes.get(doc_id), index_hashes.get(doc_id)
        if theirs is None:
            report.mismatches.append(Mismatch(doc_id, "missing", ours, None))
        elif ours is None:
            report.mismatches.append(Mismatch(doc_id, "extra", None, theirs))
        elif ours != theirs:
            report.mismatches.append(Mismatch(doc_id, "stale", ours, theirs))
    return report


def _id_order(doc_id: str) -> tuple[int, str]:
    return (int(doc_id), "") if doc_id.isdigit() else (0, doc_id)


# What the pipeline last did to a document: its row's position and each child's.
State = tuple[Any, ...] | None


def state(doc: Mapping[str, Any] | None) -> State:
    if doc is None:
        return None
    children = doc.get(CHILDREN) or {}
    return (
        doc.get(LSN),
        tuple(
            (summary, child, entry[0])
            for summary in sorted(children)
            for child, entry in sorted(children[summary].items())
        ),
    )


class Settling:
    """Which differences have held still for `settle_s` (pure: fed one round at a time)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._since: dict[str, tuple[float, str, State]] = {}

    def observe(self, now: float, mismatches: list[Mismatch], states: Mapping[str, State]) -> None:
        """Record a round; a difference whose document moved starts its wait again."""
        seen = {}
        for m in mismatches:
            mark = (m.kind, states.get(m.id))
            before = self._since.get(m.id)
            if before is not None and (before[1], before[2]) == mark:
                seen[m.id] = before
            else:
                seen[m.id] = (now, *mark)
        self._since = seen

    def settled(self, now: float) -> set[str]:
        return {i for i, (since, _, _) in self._since.items() if now - since >= self.settle_s}

    def done(self, now: float) -> bool:
        return len(self.settled(now)) == len(self._since)


def index_documents(es: Elasticsearch, index: IndexSpec) -> Iterable[dict[str, Any]]:
    """Live documents through the alias (its filter hides dead markers), with `_id`."""
    es.indices.refresh(index=index.alias)
    fields = [*index.declaration.document_fields, LSN, CHILDREN]
    query: dict[str, Any] = {"query": {"match_all": {}}}
    for hit in scan(es, index=index.alias, query=query, _source=fields, size=2000):
        yield {**hit["_source"], "_id": hit["_id"]}


def hashes(index: IndexSpec, docs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {str(doc["_id"]): content_hash(index.declaration, doc) for doc in docs}


def compare(
    dsn: str, es: Elasticsearch, index: IndexSpec, shaper: Shaper
) -> tuple[Report, dict[str, State]]:
    """One round: the index, then the source (so the index is never ahead of it)."""
    docs = {str(doc["_id"]): doc for doc in index_documents(es, index)}
    with source.connect(dsn) as conn:
        source_hashes = hashes(index, source.documents(conn, shaper))
    report = reconcile(
        index.declaration.source.table, index.alias, source_hashes, hashes(index, docs.values())
    )
    return report, {m.id: state(docs.get(m.id)) for m in report.mismatches}


def verify(
    dsn: str,
    es: Elasticsearch,
    index: IndexSpec,
    shaper: Shaper,
    settle_s: float = 0.0,
    within_s: float | None = None,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Compare until every difference has held still for `settle_s` (0: one round, every
    difference counts), or `within_s` has passed (default: three times `settle_s`)."""
    settling = Settling(settle_s)
    deadline = clock() + (3 * settle_s if within_s is None else max(within_s, settle_s))
    while True:
        report, states = compare(dsn, es, index, shaper)
        now = clock()
        settling.observe(now, report.mismatches, states)
        if not report.mismatches or settling.done(now) or now >= deadline:
            settled = settling.settled(now)
            report.in_flight = [m for m in report.mismatches if m.id not in settled]
            report.mismatches = [m for m in report.mismatches if m.id in settled]
            return report
        sleep(poll_s)
