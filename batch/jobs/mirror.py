"""A declared mirror: one captured table's changes -> its current state (and SCD2 history).

`extract -> transform -> load`, for any `pipelines/mirrors/<name>.yaml`. Incremental like the
warehouse load: a run reads the table's change topic from the offsets its last successful run
stored, and stores the new ones in the load's transaction. The run first counts the source
table in a snapshot and notes that snapshot's WAL position; it applies the changes up to that
position only (later ones wait for the next run), so the current table must then hold exactly
as many rows as the count: the quality suite checks it before anything is committed.

Every row carries the LSN of its change (`hw_lsn`): a change older than what a row holds, or
than a delete recorded in `<table>__deletes`, never overwrites it, so replays and redeliveries
change nothing. A column added to the declaration is added to the tables, and the next run
replays the topic from its beginning to fill it.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from batch import io
from batch import mirror_transforms as mt
from batch.jobs.warehouse import LoadResult, Phases, QualityFailed, Window, record_failure
from batch.quality import runner, suites
from batch.settings import BatchSettings
from headwater.pipelines import declarations
from headwater.pipelines.declarations import MirrorDeclaration, Pipelines
from headwater.pipelines.types import ColumnType, catalog_type
from headwater.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    import psycopg
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

JOB_PREFIX = "mirror:"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def job_name(mirror: str) -> str:
    """The name a mirror's runs and offsets are recorded under."""
    return f"{JOB_PREFIX}{mirror}"


# --- the tables of a mirror ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a mirror lands: `[schema.]table`, its history and its deletes beside it."""

    schema: str | None
    table: str

    @classmethod
    def of(cls, declaration: MirrorDeclaration) -> Target:
        parts = declaration.table.split(".")
        if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
            raise ValueError(
                f"{declaration.path}: target_table: must be a table or schema.table of letters, "
                f"digits and _; got {declaration.table!r}"
            )
        return cls(parts[0], parts[1]) if len(parts) == 2 else cls(None, parts[0])

    def ident(self, suffix: str = "") -> sql.Identifier:
        name = self.table + suffix
        return sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)

    @property
    def current(self) -> sql.Identifier:
        return self.ident()

    @property
    def history(self) -> sql.Identifier:
        return self.ident("_history")

    @property
    def deletes(self) -> sql.Identifier:
        return self.ident("__deletes")

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


def _ids(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _typed(columns: Sequence[tuple[str, ColumnType]]) -> list[sql.Composable]:
    return [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k.warehouse)) for n, k in columns]


def _key_types(shape: mt.MirrorShape) -> list[tuple[str, ColumnType]]:
    kinds = dict(shape.columns)
    return [(k, kinds[k]) for k in shape.keys]


def create_statements(shape: mt.MirrorShape, target: Target, history: bool) -> list[sql.Composed]:
    """The tables of a mirror, created when missing (idempotent)."""
    keys = _ids(shape.keys)
    out: list[sql.Composed] = []
    if target.schema:
        out.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target.schema)))
    out.append(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            target.current,
            sql.SQL(", ").join(
                [
                    *_typed(shape.columns),
                    sql.SQL("hw_lsn bigint NOT NULL"),
                    sql.SQL("hw_changed_at timestamptz"),
                ]
            ),
            keys,
        )
    )
    out.append(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}, hw_lsn))").format(
            target.deletes,
            sql.SQL(", ").join(
                [
                    *_typed(_key_types(shape)),
                    sql.SQL("hw_lsn bigint NOT NULL"),
                    sql.SQL("deleted_at timestamptz"),
                ]
            ),
            keys,
        )
    )
    if history:
        out.append(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}, hw_lsn))").format(
                target.history,
                sql.SQL(", ").join(
                    [
                        *_typed(shape.columns),
                        sql.SQL("valid_from timestamptz NOT NULL"),
                        sql.SQL("valid_to timestamptz"),
                        sql.SQL("is_current boolean NOT NULL"),
                        sql.SQL("hw_lsn bigint NOT NULL"),
                    ]
                ),
                keys,
            )
        )
    return out


def column_changes(
    shape: mt.MirrorShape, existing: dict[str, str]
) -> tuple[list[tuple[str, ColumnType]], list[str]]:
    """(declared columns the table lacks, columns whose stored type differs from the declared).

    `existing` maps a table's column names to their types as `format_type()` names them.
    """
    added = [(n, k) for n, k in shape.columns if n not in existing]
    differ = []
    for name, kind in shape.columns:
        if name in existing and catalog_type(existing[name]).warehouse != kind.warehouse:
            differ.append(f"{name} is {existing[name]}, declared {kind.warehouse}")
    return added, differ


def _existing_columns(conn: psycopg.Connection[Any], table: sql.Identifier) -> dict[str, str]:
    rows = conn.execute(
        sql.SQL(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = {}::regclass AND attnum > 0 AND NOT attisdropped"
        ).format(sql.Literal(table.as_string(conn)))
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def plan_tables(
    conn: psycopg.Connection[Any], shape: mt.MirrorShape, target: Target, history: bool
) -> tuple[str, list[str], list[str]]:
    """What `ensure_tables` would do, changing nothing: (action, reasons, problems).

    The action is "create" (no table yet), "add columns" (the next run replays the topic to
    fill them) or "nothing"; a stored column whose type differs from the declaration is a
    problem `ensure_tables` refuses.
    """
    tables = [target.current, *([target.history] if history else [])]
    reasons: list[str] = []
    problems: list[str] = []
    action = "nothing"
    for table in tables:
        name = table.as_string(conn).replace('"', "")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        if not exists or not exists[0]:
            action = "create"
            reasons.append(f"{name} is new")
            continue
        added, differ = column_changes(shape, _existing_columns(conn, table))
        problems += [f"{name}: {d}" for d in differ]
        if added:
            action = "add columns" if action == "nothing" else action
            reasons.append(
                f"{name}: new column(s) {', '.join(n for n, _ in added)}, "
                "filled by replaying the topic on the next run"
            )
    return action, reasons or [f"{target.label} is up to date"], problems


def ensure_tables(
    conn: psycopg.Connection[Any], job: str, shape: mt.MirrorShape, target: Target, history: bool
) -> bool:
    """Create or extend the mirror's tables; True when the topic must be replayed from its start.

    A declared column the table lacks is added, and the job's stored offsets are dropped in the
    same transaction, so runs replay the topic until one succeeds and fills the new column.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"headwater.batch.{job}",))
        for statement in create_statements(shape, target, history):
            conn.execute(statement)
        added_any = False
        tables = [target.current, *([target.history] if history else [])]
        for table in tables:
            added, differ = column_changes(shape, _existing_columns(conn, table))
            if differ:
                raise ValueError(
                    f"{table.as_string(conn)}: stored column types differ from the declaration "
                    f"({'; '.join(differ)}); change them by hand or drop the table to rebuild it"
                )
            for name, kind in added:
                log.info("%s: adding column %s %s", table.as_string(conn), name, kind.warehouse)
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        table, sql.Identifier(name), sql.SQL(kind.warehouse)
                    )
                )
                added_any = True
        fresh = not conn.execute(
            "SELECT 1 FROM batch_offsets WHERE job = %s LIMIT 1", (job,)
        ).fetchone()
        if added_any:
            conn.execute("DELETE FROM batch_offsets WHERE job = %s", (job,))
        return added_any or fresh


# --- extract -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorSource:
    """Where a mirror's changes and rows are, from its connector file."""

    topic: str
    # A libpq connection string for reading the source table; it holds a password: never log.
    dsn: str = field(repr=False)
    slot: str = "debezium"


def locate(
    settings: Settings, pipelines: Pipelines, declaration: MirrorDeclaration
) -> MirrorSource:
    """The topic, database and replication slot of a mirror's source, from its connector."""
    from connectors.sources import bind
    from connectors.spec import load_specs

    specs = load_specs(settings.connect.specs_dir, settings.interpolation_env())
    binding = bind(pipelines, specs, settings.postgres, settings.secret_values())[
        declaration.source
    ]
    spec = next(s for s in specs if s.name == binding.connector)
    return MirrorSource(binding.topic, binding.dsn, spec.config.get("slot.name", "debezium"))


@dataclass
class Extracted:
    changes: DataFrame
    count: io.SourceCount
    start: dict[int, int]
    end: dict[int, int]

    @property
    def read(self) -> int:
        """How many records the run reads from the topic."""
        return sum(e - self.start.get(p, 0) for p, e in self.end.items())


def extract(
    spark: SparkSession,
    settings: Settings,
    batch: BatchSettings,
    conn: psycopg.Connection[Any],
    job: str,
    declaration: MirrorDeclaration,
    source: MirrorSource,
    shape: mt.MirrorShape,
    replay: bool,
) -> Extracted:
    count = io.source_count(source.dsn, declaration.source.table)
    io.wait_for_capture(
        source.dsn, source.slot, count.lsn, batch.capture_timeout_s, batch.capture_settle_s
    )
    start = {} if replay else io.stored_offsets(conn, job).get(source.topic, {})
    end = io.end_offsets(settings, [source.topic])[source.topic]
    raw = io.read_topic(spark, settings, source.topic, start, end, batch.kafka_timeout_ms)
    changes = raw.transform(mt.transform_decode, shape).cache()
    return Extracted(changes, count, start, end)


# --- transform -----------------------------------------------------------------------------------


@dataclass
class Transformed:
    # Cached: the upserts and the deletes both come from it.
    latest: DataFrame
    unreadable: DataFrame
    upserts: DataFrame
    deletes: DataFrame
    rejects: DataFrame
    history: DataFrame | None


def transform(changes: DataFrame, shape: mt.MirrorShape, lsn: int, history: bool) -> Transformed:
    window = (
        changes.transform(mt.transform_readable)
        .transform(mt.transform_until, lsn)
        .transform(mt.transform_fill_unchanged, shape)
    )
    latest = window.transform(mt.transform_latest, shape).cache()
    return Transformed(
        latest=latest,
        unreadable=changes.transform(mt.transform_unreadable),
        upserts=latest.transform(mt.transform_upserts, shape),
        deletes=latest.transform(mt.transform_deletes, shape),
        rejects=window.transform(mt.transform_rejects, shape),
        history=window.transform(mt.transform_history, shape) if history else None,
    )


@dataclass
class Materialized:
    # (partition, offset) of the records skipped as no change event.
    unreadable: list[tuple[int, int]]
    upserts: pa.Table
    deletes: pa.Table
    rejects: pa.Table
    history: pa.Table | None


def materialize(tf: Transformed) -> Materialized:
    """Run the Spark plans once, into Arrow tables the load copies and the suites validate."""
    try:
        return Materialized(
            [(r["_partition"], r["_offset"]) for r in tf.unreadable.collect()],
            io.to_arrow(tf.upserts),
            io.to_arrow(tf.deletes),
            io.to_arrow(tf.rejects),
            io.to_arrow(tf.history) if tf.history is not None else None,
        )
    finally:
        tf.latest.unpersist()


# --- load ----------------------------------------------------------------------------------------


def _eq(left: str, right: str, keys: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}.{}").format(
            sql.Identifier(left), sql.Identifier(k), sql.Identifier(right), sql.Identifier(k)
        )
        for k in keys
    )


def _cols(alias: str, names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)


def _fill_unchanged(staged: str, shape: mt.MirrorShape, target: Target) -> sql.Composed:
    """Columns a change left TOASTed take the value the current table holds."""
    sets = sql.SQL(", ").join(
        sql.SQL("{c} = CASE WHEN {n} = ANY(s.hw_unchanged) THEN t.{c} ELSE s.{c} END").format(
            c=sql.Identifier(name), n=sql.Literal(name)
        )
        for name in shape.names
    )
    return sql.SQL(
        "UPDATE {staged} AS s SET {sets} FROM {current} AS t "
        "WHERE s.hw_unchanged IS NOT NULL AND {eq}"
    ).format(
        staged=sql.Identifier(staged),
        sets=sets,
        current=target.current,
        eq=_eq("s", "t", shape.keys),
    )


def merge_statements(shape: mt.MirrorShape, target: Target, history: bool) -> list[sql.Composed]:
    """The merge of the staged tables into the mirror, in order (all idempotent)."""
    keys, names = shape.keys, shape.names
    out = [_fill_unchanged("tmp_mirror_upserts", shape, target)]
    if history:
        out.append(_fill_unchanged("tmp_mirror_history", shape, target))
    out += [
        sql.SQL(
            "INSERT INTO {deletes} ({keys}, hw_lsn, deleted_at) "
            "SELECT {keys}, hw_lsn, hw_changed_at FROM tmp_mirror_deletes ON CONFLICT DO NOTHING"
        ).format(deletes=target.deletes, keys=_ids(keys)),
        sql.SQL(
            "DELETE FROM {current} AS t USING tmp_mirror_deletes AS d "
            "WHERE {eq} AND t.hw_lsn <= d.hw_lsn"
        ).format(current=target.current, eq=_eq("t", "d", keys)),
        sql.SQL(
            "INSERT INTO {current} AS t ({names}, hw_lsn, hw_changed_at) "
            "SELECT {u_names}, u.hw_lsn, u.hw_changed_at FROM tmp_mirror_upserts AS u "
            "WHERE NOT EXISTS (SELECT 1 FROM {deletes} AS d WHERE {eq} AND d.hw_lsn > u.hw_lsn) "
            "ON CONFLICT ({keys}) DO UPDATE SET {sets}, hw_lsn = excluded.hw_lsn, "
            "hw_changed_at = excluded.hw_changed_at "
            "WHERE t.hw_lsn < excluded.hw_lsn OR (t.hw_lsn = excluded.hw_lsn "
            "AND ({t_names}) IS DISTINCT FROM ({x_names}))"
        ).format(
            current=target.current,
            names=_ids(names),
            u_names=_cols("u", names),
            deletes=target.deletes,
            eq=_eq("d", "u", keys),
            keys=_ids(keys),
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(n)) for n in names
            ),
            t_names=_cols("t", names),
            x_names=_cols("excluded", names),
        ),
    ]
    if history:
        out += _history_statements(shape, target)
    return out


def _history_statements(shape: mt.MirrorShape, target: Target) -> list[sql.Composed]:
    keys, names = shape.keys, shape.names
    insert = sql.SQL(
        "INSERT INTO {history} AS h ({names}, valid_from, valid_to, is_current, hw_lsn) "
        "SELECT {names}, valid_from, valid_to, is_current, hw_lsn FROM tmp_mirror_history "
        "ON CONFLICT ({keys}, hw_lsn) DO UPDATE SET {sets} "
        "WHERE ({h_names}) IS DISTINCT FROM ({x_names})"
    ).format(
        history=target.history,
        names=_ids(names),
        keys=_ids(keys),
        sets=sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(n)) for n in names
        ),
        h_names=_cols("h", names),
        x_names=_cols("excluded", names),
    )
    # Each version ends where the key's next event (a version or a delete) starts; recomputed
    # over stored and new events of the keys this load touched, so the order of runs is moot.
    ends = sql.SQL(
        "WITH touched AS (SELECT {keys} FROM tmp_mirror_history "
        "UNION SELECT {keys} FROM tmp_mirror_deletes), "
        "events AS (SELECT {keys}, hw_lsn, valid_from AS at, true AS version FROM {history} "
        "WHERE ({keys}) IN (SELECT {keys} FROM touched) "
        "UNION ALL SELECT {keys}, hw_lsn, deleted_at, false FROM {deletes} "
        "WHERE ({keys}) IN (SELECT {keys} FROM touched)), "
        "ends AS (SELECT {keys}, hw_lsn, version, "
        "lead(at) OVER (PARTITION BY {keys} ORDER BY hw_lsn, version) AS next_at FROM events) "
        "UPDATE {history} AS h SET valid_to = e.next_at, is_current = e.next_at IS NULL "
        "FROM ends AS e WHERE e.version AND {eq} AND h.hw_lsn = e.hw_lsn "
        "AND (h.valid_to, h.is_current) IS DISTINCT FROM (e.next_at, e.next_at IS NULL)"
    ).format(
        keys=_ids(keys),
        history=target.history,
        deletes=target.deletes,
        eq=_eq("h", "e", keys),
    )
    return [insert, ends]


def staging_statements(shape: mt.MirrorShape, history: bool) -> list[sql.Composed]:
    """Temporary tables of one load, typed like the mirror, dropped at commit."""
    meta = [sql.SQL("hw_lsn bigint"), sql.SQL("hw_changed_at timestamptz")]
    out = [
        sql.SQL("CREATE TEMP TABLE tmp_mirror_upserts ({}) ON COMMIT DROP").format(
            sql.SQL(", ").join([*_typed(shape.columns), *meta, sql.SQL("hw_unchanged text[]")])
        ),
        sql.SQL("CREATE TEMP TABLE tmp_mirror_deletes ({}) ON COMMIT DROP").format(
            sql.SQL(", ").join([*_typed(_key_types(shape)), *meta])
        ),
    ]
    if history:
        out.append(
            sql.SQL("CREATE TEMP TABLE tmp_mirror_history ({}) ON COMMIT DROP").format(
                sql.SQL(", ").join(
                    [
                        *_typed(shape.columns),
                        sql.SQL("valid_from timestamptz"),
                        sql.SQL("valid_to timestamptz"),
                        sql.SQL("is_current boolean"),
                        sql.SQL("hw_lsn bigint"),
                        sql.SQL("hw_unchanged text[]"),
                    ]
                )
            )
        )
    return out


_STAGED_META = {"_lsn": "hw_lsn", "_ts": "hw_changed_at", "_unchanged": "hw_unchanged"}


def _frames(
    conn: psycopg.Connection[Any],
    shape: mt.MirrorShape,
    target: Target,
    m: Materialized,
    history: bool,
) -> dict[str, pd.DataFrame]:
    """What the suites check: the current table's keys after the merge, the staged changes with
    why a value did not fit (`_bad_<column>`), and the touched keys' history."""
    import pandas as pd

    current = pd.DataFrame(
        conn.execute(sql.SQL("SELECT {} FROM {}").format(_ids(shape.keys), target.current)),
        columns=list(shape.keys),
    )
    staged = m.upserts.select([*shape.names, "_errors"]).to_pandas()
    rejects = m.rejects.select([*shape.names, "_errors"]).to_pandas()
    changes = pd.concat([staged, rejects], ignore_index=True) if len(rejects) else staged
    errors = changes["_errors"].map(lambda e: list(e) if e is not None else [])

    def bad(prefix: str) -> pd.Series:
        return errors.map(
            lambda found: next((e for e in found if e.startswith(prefix + ": ")), None)
        )

    for name in shape.names:
        changes[f"_bad_{name}"] = bad(name)
    known = tuple(f"{n}: " for n in shape.names)
    changes["_bad_change"] = errors.map(
        lambda found: next((e for e in found if not e.startswith(known)), None)
    )
    frames = {target.table: current, f"{target.table}_changes": changes.drop(columns="_errors")}
    if history:
        touched = sql.SQL(
            "SELECT {keys}, hw_lsn, valid_from, valid_to, "
            "CASE WHEN is_current THEN jsonb_build_array({keys})::text END AS _current_key "
            "FROM {history} WHERE ({keys}) IN "
            "(SELECT {keys} FROM tmp_mirror_history UNION SELECT {keys} FROM tmp_mirror_deletes)"
        ).format(keys=_ids(shape.keys), history=target.history)
        cur = conn.execute(touched)
        frames[f"{target.table}_history"] = pd.DataFrame(
            cur.fetchall(), columns=[d.name for d in cur.description or []]
        )
    return frames


def _suites(shape: mt.MirrorShape, target: Target, rows: int, history: bool) -> dict[str, Any]:
    name = target.table
    out = {
        name: suites.mirror_current_suite(name, shape.keys, rows),
        f"{name}_changes": suites.mirror_changes_suite(name, shape.keys, shape.names),
    }
    if history:
        out[f"{name}_history"] = suites.mirror_history_suite(name, shape.keys)
    return out


def _staged(table: pa.Table, names: Sequence[str]) -> dict[str, str]:
    return {
        **{n: n for n in names},
        **{k: v for k, v in _STAGED_META.items() if k in table.schema.names},
    }


def load(
    conn: psycopg.Connection[Any],
    batch: BatchSettings,
    job: str,
    declaration: MirrorDeclaration,
    shape: mt.MirrorShape,
    target: Target,
    m: Materialized,
    count: io.SourceCount,
    offsets: io.Offsets,
    kind: str,
    started_at: datetime,
) -> LoadResult:
    """Stage, merge, validate and store the offsets in one transaction: all or nothing."""
    began = time.perf_counter()
    history = declaration.history
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"headwater.batch.{job}",))
        # Keys are compared as JSON text (`_current_key`): one time zone for every timestamp.
        cur.execute("SET LOCAL timezone = 'UTC'")
        for statement in staging_statements(shape, history):
            cur.execute(statement)
        rows = {
            "upserts": io.copy_rows(
                cur, "tmp_mirror_upserts", m.upserts, _staged(m.upserts, shape.names)
            ),
            "deletes": io.copy_rows(
                cur,
                "tmp_mirror_deletes",
                m.deletes,
                {**{k: k for k in shape.keys}, "_lsn": "hw_lsn", "_ts": "hw_changed_at"},
            ),
        }
        if m.history is not None:
            rows["history"] = io.copy_rows(
                cur,
                "tmp_mirror_history",
                m.history,
                {
                    **{n: n for n in shape.names},
                    "valid_from": "valid_from",
                    "valid_to": "valid_to",
                    "is_current": "is_current",
                    "_lsn": "hw_lsn",
                    "_unchanged": "hw_unchanged",
                },
            )
        for table in ("tmp_mirror_upserts", "tmp_mirror_deletes"):
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        for statement in merge_statements(shape, target, history):
            cur.execute(statement)
        verdict = runner.validate(
            _frames(conn, shape, target, m, history), _suites(shape, target, count.rows, history)
        )
        report = runner.write_report(verdict, batch.reports_dir, f"{job} {kind}")
        if not verdict.success:
            raise QualityFailed(report)
        loaded = {target.label: rows["upserts"], f"{target.label} deletes": rows["deletes"]}
        if "history" in rows:
            loaded[f"{target.label}_history"] = rows["history"]
        if m.unreadable:
            loaded["skipped: no change event"] = len(m.unreadable)
        run_id = io.record_run(
            conn,
            job=job,
            kind=kind,
            started_at=started_at,
            status="succeeded",
            window=(None, None),
            rows_loaded=loaded,
            offsets=offsets,
            quality="passed",
            report=report,
        )
        io.save_offsets(conn, job, offsets, run_id)
    return LoadResult(run_id, loaded, report, time.perf_counter() - began)


# --- the run -------------------------------------------------------------------------------------


def run(
    settings: Settings,
    batch: BatchSettings,
    name: str,
    spark: SparkSession | None = None,
    replay: bool = False,
) -> LoadResult:
    """One run of mirror `name`; raises on failure after recording it."""
    from batch.spark import build_session

    started_at = datetime.now(UTC)
    job = job_name(name)
    pipelines = load_pipelines(settings)
    declaration = pipelines.mirror(name)
    shape = mt.MirrorShape.of(declaration)
    target = Target.of(declaration)
    kind = "rebuild" if replay else "incremental"
    io.ensure_database(settings)
    ex: Extracted | None = None
    try:
        phases = Phases()
        source = locate(settings, pipelines, declaration)
        session = spark or build_session(settings, batch, f"headwater-{job}")
        with io.connect(settings) as conn:
            io.ensure_schema(conn)
            if ensure_tables(conn, job, shape, target, declaration.history):
                replay = True
                kind = "rebuild"
            phases.done("start (Spark session, tables)")
            ex = extract(session, settings, batch, conn, job, declaration, source, shape, replay)
            phases.done("count the source, wait for its changes")
            tf = transform(ex.changes, shape, ex.count.lsn, declaration.history)
            mat = materialize(tf)
            offsets = {source.topic: mt.next_offsets(ex.changes, ex.end, ex.count.lsn)}
            phases.done(f"read and transform {ex.read} changes (Spark)")
            for partition, offset in mat.unreadable[:20]:
                log.warning(
                    "%s[%d]@%d: not a change event, skipped", source.topic, partition, offset
                )
            result = load(
                conn,
                batch,
                job,
                declaration,
                shape,
                target,
                mat,
                ex.count,
                offsets,
                kind,
                started_at,
            )
            phases.done("load (stage, merge, validate, commit)")
            log.info(
                "%s took %s", job, ", ".join(f"{k} {v:.1f}s" for k, v in phases.seconds.items())
            )
            return replace(result, phases=phases.seconds)
    except BaseException as exc:
        record_failure(settings, job, kind, Window(), started_at, exc)
        raise
    finally:
        if ex is not None:
            ex.changes.unpersist()


def load_pipelines(settings: Settings) -> Pipelines:
    return declarations.load(settings.pipelines.dir)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m batch.jobs.mirror NAME [--replay]`: one run of a declared mirror."""
    parser = argparse.ArgumentParser(prog="batch.jobs.mirror", description=__doc__)
    parser.add_argument("name", help="the mirror's declared name (pipelines/mirrors/NAME.yaml)")
    parser.add_argument("--replay", action="store_true", help="read the topic from its beginning")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result = run(Settings.load(), BatchSettings(), args.name, replay=args.replay)
    except QualityFailed as exc:
        print(
            f"{args.name}: data quality FAILED, nothing loaded; report: {exc.report}",
            file=sys.stderr,
        )
        return 2
    print(f"{args.name}: run {result.run_id} loaded {result.rows}; report: {result.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
