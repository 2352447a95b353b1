"""Reading the source of truth (a declared index's table, and its summarised child tables) as
search documents, for `reindex` and `verify`. Shaped by the same `Shaper` as the workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from headwater.pipelines.declarations import Source
from indexers.documents import ChildShape, Shaped, Shaper, figures

# parent document id -> child id -> values (in the summary's `read_columns` order)
Children = dict[str, dict[str, list[Any]]]


def connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(dsn, row_factory=dict_row)


def snapshot_lsn(conn: psycopg.Connection[Any]) -> int:
    """The WAL position now, as the integer Debezium reports as `__lsn`."""
    row = conn.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn").fetchone()
    assert row is not None
    return int(row["lsn"] if isinstance(row, dict) else row[0])


def _select(source: Source, columns: list[str]) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in dict.fromkeys(columns)),
        sql.Identifier(source.schema_name),
        sql.Identifier(source.table_name),
    )


def rows(conn: psycopg.Connection[Any], shaper: Shaper) -> Iterator[Shaped]:
    """Every row of the index's table, shaped (a server-side cursor: any table size)."""
    declaration = shaper.declaration
    columns = [declaration.column_of(f) for f in declaration.row_fields]
    with conn.cursor(name=f"scan_{declaration.name}") as cur:
        cur.execute(_select(declaration.source, columns))
        for row in cur:
            yield shaper.shape(row, source=True)


def children(conn: psycopg.Connection[Any], child: ChildShape) -> Children:
    """Every child row of a summary, grouped by the parent it belongs to."""
    summary = child.summary
    columns = [*summary.id, *summary.parent_key, *summary.read_columns]
    out: Children = {}
    with conn.cursor(name=f"scan_{summary.name}") as cur:
        cur.execute(_select(summary.source, columns))
        for row in cur:
            child_id, parent_id, values = child.read(row, source=True)
            if parent_id is not None:
                out.setdefault(parent_id, {})[child_id] = values or []
    return out


def documents(conn: psycopg.Connection[Any], shaper: Shaper) -> Iterator[dict[str, Any]]:
    """Each row as its search document should read (fields and summary figures), with `_id`."""
    summaries = {s.name: children(conn, shaper.child(s.name)) for s in shaper.declaration.summaries}
    for shaped in rows(conn, shaper):
        doc = {**shaped.fields, "_id": shaped.id}
        for summary in shaper.declaration.summaries:
            doc.update(figures(summary, summaries[summary.name].get(shaped.id, {}).values()))
        yield doc
