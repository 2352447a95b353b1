"""Reconciling an index with its source table: counts and a content hash per id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from headwater.settings import Settings
from indexers import source
from indexers.catalog import IndexSpec, spec
from indexers.documents import (
    PRODUCT_FIELDS,
    PRODUCT_SUMMARY_FIELDS,
    REVIEW_FIELDS,
    product_hash,
    review_hash,
)

MismatchKind = Literal["missing", "extra", "stale"]
TABLES = ("products", "reviews")


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


def hashes(
    docs: Iterable[Mapping[str, Any]], digest: Callable[[Mapping[str, Any]], str]
) -> dict[str, str]:
    return {str(doc["id"]): digest(doc) for doc in docs}


_DIGESTS = {"products": product_hash, "reviews": review_hash}
_FIELDS = {"products": PRODUCT_FIELDS + PRODUCT_SUMMARY_FIELDS, "reviews": REVIEW_FIELDS}


def index_documents(es: Elasticsearch, index: IndexSpec) -> Iterable[dict[str, Any]]:
    """Live documents through the alias (its filter hides dead markers), id from `_id`."""
    es.indices.refresh(index=index.alias)
    for hit in scan(
        es,
        index=index.alias,
        query={"query": {"match_all": {}}},
        _source=list(_FIELDS[index.name]),
        size=2000,
    ):
        yield {**hit["_source"], "id": int(hit["_id"])}


def verify(settings: Settings, es: Elasticsearch, table: str, prefix: str = "") -> Report:
    index = spec(table, prefix)
    with source.connect(settings.postgres.dsn()) as conn:
        rows = (
            source.product_documents(conn) if table == "products" else source.review_documents(conn)
        )
        source_hashes = hashes(rows, _DIGESTS[table])
    index_hashes = hashes(index_documents(es, index), _DIGESTS[table])
    return reconcile(table, index.alias, source_hashes, index_hashes)
