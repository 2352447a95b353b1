"""Reconciling a declared index with its source table: counts and a content hash per id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from indexers import source
from indexers.catalog import IndexSpec
from indexers.documents import Shaper, content_hash

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

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.source_count == self.index_count


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


def index_documents(es: Elasticsearch, index: IndexSpec) -> Iterable[dict[str, Any]]:
    """Live documents through the alias (its filter hides dead markers), with `_id`."""
    es.indices.refresh(index=index.alias)
    fields = list(index.declaration.document_fields)
    query: dict[str, Any] = {"query": {"match_all": {}}}
    for hit in scan(es, index=index.alias, query=query, _source=fields, size=2000):
        yield {**hit["_source"], "_id": hit["_id"]}


def hashes(index: IndexSpec, docs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {str(doc["_id"]): content_hash(index.declaration, doc) for doc in docs}


def verify(dsn: str, es: Elasticsearch, index: IndexSpec, shaper: Shaper) -> Report:
    with source.connect(dsn) as conn:
        source_hashes = hashes(index, source.documents(conn, shaper))
    index_hashes = hashes(index, index_documents(es, index))
    return reconcile(index.declaration.source.table, index.alias, source_hashes, index_hashes)
