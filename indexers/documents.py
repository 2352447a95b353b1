"""What a search document is: a declared index's rows shaped into documents, their merge rule,
and their content hash. Generic over `IndexDeclaration`s.

Pure: no I/O. The stream workers, `reindex` and `verify` all shape documents here (`Shaper`),
so the index and the reconciliation can never disagree about what a document should contain.

Every document carries, beside its declared fields, `hw_live` (false for a deleted row: the
alias filters on it) and `hw_lsn` (the source position of the row it shows).

Ordering. Every write carries the source position (the change's WAL LSN) of what it brings.
- An index without summaries is written with Elasticsearch external versioning, version = LSN:
  a duplicate or older event gets a 409 and is skipped. A deleted row becomes a dead marker
  (`hw_live: false`, same versioning) instead of an Elasticsearch delete, so the "deleted at LSN
  L" fact never expires (a real delete's version tombstone is forgotten after
  `index.gc_deletes`), and `reindex` can copy it with the versions intact.
- An index with summaries is fed by several streams: its own rows and each summarised child
  table (keyed by the child's id, so on other partitions and other workers). Elasticsearch
  keeps one version per document, which cannot order independent streams, so the document
  keeps one version per component instead: `hw_lsn` for the row and, in `hw_children`,
  `[lsn, values|null]` per child row. Every write goes through `merge`: a component is replaced
  only by a newer LSN (the external-versioning rule applied per component), and the summary
  figures are recomputed from the children in the same write. The merge is commutative and
  idempotent, so duplicates, reordering and replays after a crash converge to the same
  document; concurrent workers are serialised by compare-and-set (`indexers.merge`).
A TOASTed column an update left unchanged arrives without its value; the writer keeps the
value the document already has (`Shaped.keep`).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from headwater.pipelines.declarations import IndexDeclaration, Summary
from headwater.pipelines.types import UNAVAILABLE, ColumnType, TypeError_, column_type

LIVE = "hw_live"
LSN = "hw_lsn"
CHILDREN = "hw_children"
INTERNAL = (LIVE, LSN, CHILDREN)

Transform = Callable[[dict[str, Any]], dict[str, Any]]


class ShapeError(ValueError):
    """A row that cannot become a document; the message names the column and why."""


def load_transform(dotted: str) -> Transform:
    """The function at `package.module:function`; a clear error if it is not there."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"transform {dotted}: cannot import {module_name}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ImportError(f"transform {dotted}: {module_name} has no function {attr}")
    return function


def document_id(values: Sequence[Any], types: Sequence[ColumnType]) -> str:
    """The document id of a key: the value itself, or its parts joined by '|' (escaped)."""
    if any(value is None for value in values):
        raise ShapeError("a key column is null")
    parts = [kind.canonical(value) for value, kind in zip(values, types, strict=True)]
    if len(parts) == 1:
        return str(parts[0])
    return "|".join(quote(str(p), safe="") for p in parts)


@dataclass(frozen=True)
class Shaped:
    """One row as document fields, with the fields whose value the change did not carry."""

    id: str
    fields: dict[str, Any]
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChildShape:
    """How one summarised child row is read: its own id, its parent's id, its values."""

    summary: Summary
    id_types: tuple[ColumnType, ...]
    parent_types: tuple[ColumnType, ...]
    column_types: dict[str, ColumnType]

    def read(
        self, row: Mapping[str, Any], source: bool
    ) -> tuple[str, str | None, list[Any] | None]:
        """(child id, parent document id or None, values in `read_columns` order)."""
        convert = "from_source" if source else "from_change"
        try:
            child_id = document_id(
                [
                    _read(kind, row, c, convert)
                    for c, kind in zip(self.summary.id, self.id_types, strict=True)
                ],
                self.id_types,
            )
            parent = [
                _read(kind, row, c, convert)
                for c, kind in zip(self.summary.parent_key, self.parent_types, strict=True)
            ]
            parent_id = (
                None if any(p is None for p in parent) else document_id(parent, self.parent_types)
            )
            values = []
            for column in self.summary.read_columns:
                kind = self.column_types[column]
                value = _read(kind, row, column, convert)
                if value is UNAVAILABLE:
                    raise ShapeError(f"column {column}: unchanged TOASTed value cannot be summed")
                values.append(None if value is None else kind.to_document(value))
        except TypeError_ as exc:
            raise ShapeError(str(exc)) from None
        return child_id, parent_id, values


def _read(kind: ColumnType, row: Mapping[str, Any], column: str, convert: str) -> Any:
    if column not in row:
        raise ShapeError(f"column {column}: missing from the row")
    value = row[column]
    if value is None:
        return None
    try:
        return getattr(kind, convert)(value)
    except TypeError_ as exc:
        raise ShapeError(f"column {column}: {exc}") from None


class Shaper:
    """Rows of one declared index into documents: built once per index at start-up."""

    def __init__(self, declaration: IndexDeclaration, transform: Transform | None = None) -> None:
        self.declaration = declaration
        self.types = {name: f.column_type for name, f in declaration.fields.items()}
        self.id_types = tuple(self.types[k] for k in declaration.id)
        if transform is None and declaration.transform:
            transform = load_transform(declaration.transform)
        self.transform = transform
        self.children = {
            s.name: ChildShape(
                s,
                tuple(_child_key_type(s, c) for c in s.id),
                self.id_types,
                {c: column_type(t) for c, t in s.columns.items()},
            )
            for s in declaration.summaries
        }

    @property
    def name(self) -> str:
        return self.declaration.name

    def key_id(self, key: Mapping[str, Any], source: bool = False) -> str:
        """The document id of a change's key (or a source row)."""
        convert = "from_source" if source else "from_change"
        values = [
            _read(self.types[f], key, self.declaration.column_of(f), convert)
            for f in self.declaration.id
        ]
        return document_id(values, self.id_types)

    def shape(self, row: Mapping[str, Any], source: bool = False) -> Shaped:
        """A row (a change's or the table's) as document fields. Raises `ShapeError`."""
        convert = "from_source" if source else "from_change"
        fields: dict[str, Any] = {}
        keep = []
        for name in self.declaration.row_fields:
            value = _read(self.types[name], row, self.declaration.column_of(name), convert)
            if value is UNAVAILABLE:
                keep.append(name)
            else:
                fields[name] = None if value is None else self.types[name].to_document(value)
        doc_id = document_id([fields.get(k) for k in self.declaration.id], self.id_types)
        if self.transform is not None:
            fields = self._transformed(fields)
        return Shaped(doc_id, fields, tuple(keep))

    def _transformed(self, fields: dict[str, Any]) -> dict[str, Any]:
        assert self.transform is not None
        try:
            out = self.transform(dict(fields))
        except Exception as exc:  # the user's code: any failure is this row's
            raise ShapeError(f"transform {self.declaration.transform}: {exc!r}") from exc
        if not isinstance(out, dict):
            raise ShapeError(f"transform {self.declaration.transform} returned {type(out)}")
        unknown = sorted(set(out) - set(self.declaration.fields))
        if unknown:
            raise ShapeError(f"transform returned undeclared fields: {', '.join(unknown)}")
        return out

    def child(self, summary: str) -> ChildShape:
        return self.children[summary]


def _child_key_type(summary: Summary, column: str) -> ColumnType:
    declared = summary.columns.get(column)
    return column_type(declared) if declared else column_type("bigint")


# --- the merge rule ----------------------------------------------------------------------------


@dataclass
class Params:
    """A change to one merged document: its row component and/or child components."""

    lsn: int | None = None
    live: bool = True
    fields: dict[str, Any] | None = None
    keep: tuple[str, ...] = ()
    # summary name -> child id -> [lsn, values or None (deleted)]
    children: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def absorb(self, other: Params) -> None:
        """Combine `other` into this: the newer row component, each child's newest entry."""
        if other.lsn is not None and (self.lsn is None or other.lsn >= self.lsn):
            self.lsn, self.live, self.fields, self.keep = (
                other.lsn,
                other.live,
                other.fields,
                other.keep,
            )
        for summary, entries in other.children.items():
            mine = self.children.setdefault(summary, {})
            for child_id, entry in entries.items():
                kept = mine.get(child_id)
                if kept is None or entry[0] >= kept[0]:
                    mine[child_id] = entry


def merge(
    declaration: IndexDeclaration, current: Mapping[str, Any] | None, params: Params
) -> dict[str, Any] | None:
    """The document after applying `params` to `current`; None when nothing changes (the
    change is a duplicate or older than what is there)."""
    doc: dict[str, Any] = dict(current) if current else {}
    changed = not current
    doc.setdefault(LSN, -1)
    doc.setdefault(LIVE, False)
    children = {s: {k: list(v) for k, v in e.items()} for s, e in (doc.get(CHILDREN) or {}).items()}
    if params.lsn is not None and params.lsn > doc[LSN]:
        doc[LSN], doc[LIVE] = params.lsn, params.live
        if params.fields is not None:
            doc.update(params.fields)
        changed = True
    for name, changes in params.children.items():
        mine = children.setdefault(name, {})
        for child_id, entry in changes.items():
            kept = mine.get(child_id)
            if kept is None or entry[0] > kept[0]:
                mine[child_id] = list(entry)
                changed = True
    if not changed:
        return None
    if declaration.summaries:
        doc[CHILDREN] = children
        for declared in declaration.summaries:
            rows = [v[1] for v in children.get(declared.name, {}).values() if v[1] is not None]
            doc.update(figures(declared, rows))
    return doc


def _order(value: Any) -> tuple[int, Any]:
    # Numbers compare as numbers, everything else (ISO dates and times, text) as text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def figures(summary: Summary, rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The summary's figures over child rows (values in `summary.read_columns` order)."""
    rows = list(rows)
    position = {c: i for i, c in enumerate(summary.read_columns)}
    out: dict[str, Any] = {}
    for name, figure in summary.fields.items():
        if figure.op == "count":
            out[name] = len(rows)
            continue
        assert figure.column is not None
        at = position[figure.column]
        values = [r[at] for r in rows if r[at] is not None]
        if figure.op == "latest":
            assert figure.by is not None
            by = position[figure.by]
            # Ties on `by` are broken by the value itself, so any order of arrival agrees.
            ordered = sorted(
                (r for r in rows if r[by] is not None), key=lambda r: (_order(r[by]), _order(r[at]))
            )
            out[name] = ordered[-1][at] if ordered else None
        elif not values:
            out[name] = None
        elif figure.op == "sum":
            out[name] = sum(values)
        elif figure.op == "avg":
            out[name] = sum(values) / len(values)
        elif figure.op == "min":
            out[name] = min(values, key=_order)
        else:
            out[name] = max(values, key=_order)
    return out


# --- the content hash ----------------------------------------------------------------------


def _canonical_figure(summary: Summary, name: str, value: Any) -> str | None:
    if value is None:
        return None
    figure = summary.fields[name]
    if figure.op in ("avg", "sum") and isinstance(value, float):
        return f"{value:.9g}"
    return summary.field_type(name).canonical(value)


def content_hash(declaration: IndexDeclaration, doc: Mapping[str, Any]) -> str:
    """A digest of a document's declared fields (JSON form), the same for a source row's
    document and the indexed one whatever the number formatting."""
    canonical: dict[str, Any] = {}
    for name, declared in declaration.fields.items():
        value = doc.get(name)
        if value is None:
            canonical[name] = None
        elif declared.computed:
            canonical[name] = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        else:
            canonical[name] = declared.column_type.canonical(value)
    for name, (summary, _) in declaration.summary_fields.items():
        canonical[name] = _canonical_figure(summary, name, doc.get(name))
    blob = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def dead_document(doc_id_fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a deleted row leaves (external-versioned indexes): its id fields, not live."""
    return {**(doc_id_fields or {}), LIVE: False}
