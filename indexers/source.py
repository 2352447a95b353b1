"""Reading the source of truth (a declared index's table, and its summarised child tables) as
search documents, for `reindex` and `verify`. Shaped by the same `Shaper` as the workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class WritersStillOpen(RuntimeError):
    """Transactions that wrote before a snapshot stayed open longer than it may wait."""


def _one(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0])


@contextmanager
def consistent_snapshot(
    conn: psycopg.Connection[Any],
    wait_s: float = 600.0,
    progress: Callable[[str], None] | None = None,
) -> Iterator[int]:
    """A repeatable-read transaction on `conn` (idle, not in a transaction) whose snapshot
    holds every change at or below the position it yields, as the integer Debezium reports
    as `__lsn`.

    Versions are change LSNs, but a transaction's changes become visible when it commits: one
    that wrote at L and commits after a snapshot taken at W > L is not in that snapshot, yet
    its change has a lower LSN than W, so a snapshot written at version W would win over it
    for good. So: read the WAL insert position P, then take a transaction id N (ids are given
    out at a transaction's first write, so every transaction that wrote before P has a lower
    one), wait for a snapshot in which every id below N has ended, and read in it. What it
    cannot see was written by a transaction that began writing after P, at an LSN of at least
    P: version P - 1 is below all of it.
    """
    conn.autocommit = True
    position = _one(conn, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
    horizon = _one(conn, "SELECT pg_current_xact_id()::text::bigint")
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # The first query fixes the transaction's snapshot: its oldest open transaction.
            oldest = _one(conn, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            if oldest >= horizon:
                yield position - 1
                return
        if time.monotonic() > deadline:
            raise WritersStillOpen(
                f"a transaction that wrote before the snapshot (xid {oldest}) is still open "
                f"after {wait_s:.0f}s; see pg_stat_activity.backend_xid and pg_prepared_xacts"
            )
        if progress is not None and not told:
            progress(f"waiting for transactions open since before the snapshot (xid {oldest})")
            told = True
        time.sleep(0.05)


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
