"""The warehouse load: CDC topics -> latest state per key -> star schema, gated by quality suites.

`extract -> transform -> load`. Incremental by default: the run reads each topic from the
offsets the last successful run stored up to the high watermarks seen at its start, and stores
the new offsets in the same transaction as the load. `--from/--to` backfills: it replays the
topics from the beginning up to the stored offsets and rewrites the facts of those days.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from batch import io
from batch import transforms as t
from batch.quality import runner, suites
from batch.settings import BatchSettings
from headwater.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    import psycopg
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

JOB = "warehouse"
TABLES = ("customers", "products", "orders", "order_items")
DIM_CUSTOMER_SCHEMA = (
    "customer_key bigint, customer_id bigint, email string, full_name string, country string, "
    "valid_from timestamp, valid_to timestamp, is_current boolean"
)
ORDER_SCHEMA = (
    "id bigint, customer_id bigint, status string, total decimal(12,2), created_at timestamp, "
    "updated_at timestamp"
)
LINE_SCHEMA = (
    "id bigint, order_id bigint, product_id bigint, quantity int, unit_price decimal(10,2)"
)


class QualityFailed(RuntimeError):
    def __init__(self, report: Path) -> None:
        super().__init__(f"data quality failed; report: {report}")
        self.report = report


@dataclass(frozen=True)
class Window:
    """None/None: incremental. A date range: a backfill of the facts of those days."""

    date_from: date | None = None
    date_to: date | None = None

    @property
    def backfill(self) -> bool:
        return self.date_from is not None or self.date_to is not None

    def bounds(self) -> tuple[int, int]:
        low = self.date_from or date(1, 1, 1)
        high = self.date_to or date(9999, 12, 31)
        return int(low.strftime("%Y%m%d")), int(high.strftime("%Y%m%d"))


@dataclass
class Extracted:
    changes: dict[str, DataFrame]
    stored_customers: DataFrame
    stored_orders: DataFrame
    stored_lines: DataFrame
    start: io.Offsets
    end: io.Offsets


@dataclass
class Transformed:
    dim_customer: DataFrame
    dim_product: DataFrame
    deleted_products: DataFrame
    dim_date: DataFrame
    orders: DataFrame
    deleted_orders: DataFrame
    facts: DataFrame
    deleted_items: DataFrame
    # What the source says the tables should hold, for the row-count expectations.
    source_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Materialized:
    tables: dict[str, pa.Table]
    source_counts: dict[str, int]


def _ids(df: DataFrame, column: str) -> list[int]:
    return [r[0] for r in df.select(column).where(F.col(column).isNotNull()).distinct().collect()]


def extract(
    spark: SparkSession,
    settings: Settings,
    batch: BatchSettings,
    conn: psycopg.Connection[Any],
    window: Window,
) -> Extracted:
    topics = {table: settings.kafka.cdc_topic(table) for table in TABLES}
    stored = io.stored_offsets(conn, JOB)
    if window.backfill:
        # Replay everything up to where the incremental loads stand (or now, before the first).
        start: io.Offsets = {topic: {} for topic in topics.values()}
        watermarks = io.end_offsets(settings, topics.values())
        end = {topic: stored.get(topic) or watermarks[topic] for topic in topics.values()}
    else:
        start = {topic: stored.get(topic, {}) for topic in topics.values()}
        end = io.end_offsets(settings, topics.values())
    changes = {
        table: io.read_topic(
            spark, settings, topic, start[topic], end[topic], batch.kafka_timeout_ms
        ).transform(t.transform_decode, table)
        for table, topic in topics.items()
    }
    for df in changes.values():
        df.cache()
    stored_customers = io.query_frame(
        spark,
        conn,
        "SELECT customer_key, customer_id, email, full_name, country, valid_from, valid_to, "
        "is_current FROM dim_customer",
        None,
        DIM_CUSTOMER_SCHEMA,
    )
    item_orders = _ids(changes["order_items"], "order_id")
    changed_orders = _ids(changes["orders"], "id")
    stored_orders = io.query_frame(
        spark,
        conn,
        "SELECT id, customer_id, status, total, created_at, updated_at FROM state_orders "
        "WHERE id = ANY(%s)",
        (item_orders,),
        ORDER_SCHEMA,
    )
    stored_lines = io.query_frame(
        spark,
        conn,
        "SELECT order_item_id, order_id, product_id, quantity, unit_price FROM fact_order_line "
        "WHERE order_id = ANY(%s)",
        (changed_orders,),
        LINE_SCHEMA,
    )
    return Extracted(changes, stored_customers, stored_orders, stored_lines, start, end)


def transform(ex: Extracted, window: Window) -> Transformed:
    latest = {table: t.transform_latest_state(df) for table, df in ex.changes.items()}
    dim_customer = t.transform_dim_customer(ex.stored_customers, ex.changes["customers"])
    touched = dim_customer.select("customer_id").distinct()
    customers_all = ex.stored_customers.join(touched, "customer_id", "left_anti").unionByName(
        dim_customer
    )
    orders_live = t.transform_live(latest["orders"]).select(*ex.stored_orders.columns)
    orders_all = ex.stored_orders.join(
        latest["orders"].select("id"), "id", "left_anti"
    ).unionByName(orders_live)
    items_live = t.transform_live(latest["order_items"]).select(*ex.stored_lines.columns)
    items_all = ex.stored_lines.join(
        latest["order_items"].select("id"), "id", "left_anti"
    ).unionByName(items_live)
    facts = t.transform_fact_order_line(items_all, orders_all, customers_all)
    if window.backfill:
        low, high = window.bounds()
        facts = facts.where(F.col("date_key").between(low, high))
    dim_product = t.transform_dim_product(latest["products"])
    return Transformed(
        dim_customer=dim_customer,
        dim_product=dim_product,
        deleted_products=t.transform_deleted_keys(latest["products"]),
        dim_date=facts.select(F.col("ordered_at").alias("date")).transform(t.transform_dim_date),
        orders=orders_live,
        deleted_orders=t.transform_deleted_keys(latest["orders"]),
        facts=facts,
        deleted_items=t.transform_deleted_keys(latest["order_items"]),
    )


def materialize(tf: Transformed, window: Window) -> Materialized:
    """Run the Spark plans once, into Arrow tables the load copies and the suites validate."""
    frames = {
        "dim_customer": tf.dim_customer,
        "dim_product": tf.dim_product,
        "deleted_products": tf.deleted_products,
        "state_orders": tf.orders,
        "deleted_orders": tf.deleted_orders,
        "fact_order_line": tf.facts,
        "deleted_items": tf.deleted_items,
    }
    tables: dict[str, pa.Table] = {}
    for name, df in frames.items():
        began = time.perf_counter()
        tables[name] = io.to_arrow(df)
        log.info("%s: %d rows in %.1fs", name, tables[name].num_rows, time.perf_counter() - began)
    # The calendar comes from the facts already on the driver, not from a second Spark pass.
    tables["dim_date"] = io.to_arrow(
        tf.facts.sparkSession.createDataFrame(
            tables["fact_order_line"].select(["ordered_at"]).to_pandas().drop_duplicates(),
            "ordered_at timestamp",
        )
        .select(F.col("ordered_at").alias("date"))
        .transform(t.transform_dim_date)
    )
    # The source's view: each live item of the window should become exactly one line.
    counts = {
        "fact_order_line": tables["fact_order_line"].num_rows,
        "dim_product": tables["dim_product"].num_rows,
    }
    return Materialized(tables, counts)


def _bounds(expected: int, tolerance: float) -> suites.Plausible:
    return suites.Plausible(math.floor(expected * (1 - tolerance)), expected)


def _frames(conn: psycopg.Connection[Any], m: Materialized) -> dict[str, pd.DataFrame]:
    """Pandas frames of the staged rows, with the foreign-key columns the suites check."""
    frames = {
        name: m.tables[name].to_pandas()
        for name in ("dim_customer", "dim_product", "dim_date", "fact_order_line")
    }
    customer = frames["dim_customer"]
    customer["_current_id"] = customer["customer_id"].where(customer["is_current"].astype(bool))
    # Keys as they stand inside the load's transaction, i.e. after the dimension merge.
    products = {r[0] for r in conn.execute("SELECT product_id FROM dim_product")}
    customers = {r[0] for r in conn.execute("SELECT customer_key FROM dim_customer")}
    dates = {r[0] for r in conn.execute("SELECT date_key FROM dim_date")}
    fact = frames["fact_order_line"]
    fact["_product_found"] = fact["product_id"].isin(products)
    fact["_customer_found"] = fact["customer_key"].isin(customers)
    fact["_date_found"] = fact["date_key"].isin(dates)
    return frames


_MERGE_DIMS = """
DELETE FROM dim_customer WHERE customer_id IN (SELECT customer_id FROM tmp_dim_customer);
INSERT INTO dim_customer SELECT * FROM tmp_dim_customer;
DELETE FROM dim_product WHERE product_id IN (SELECT id FROM tmp_deleted_products);
INSERT INTO dim_product AS d SELECT * FROM tmp_dim_product
  ON CONFLICT (product_id) DO UPDATE SET sku = excluded.sku, name = excluded.name,
    category = excluded.category, brand = excluded.brand, price = excluded.price
  WHERE (d.sku, d.name, d.category, d.brand, d.price)
    IS DISTINCT FROM (excluded.sku, excluded.name, excluded.category, excluded.brand,
                      excluded.price);
INSERT INTO dim_date SELECT * FROM tmp_dim_date ON CONFLICT (date_key) DO NOTHING;
"""

_MERGE_FACTS = """
DELETE FROM state_orders WHERE id IN (SELECT id FROM tmp_deleted_orders);
INSERT INTO state_orders AS s SELECT * FROM tmp_state_orders
  ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
    total = excluded.total, created_at = excluded.created_at, updated_at = excluded.updated_at
  WHERE (s.customer_id, s.status, s.total, s.created_at, s.updated_at)
    IS DISTINCT FROM (excluded.customer_id, excluded.status, excluded.total,
                      excluded.created_at, excluded.updated_at);
DELETE FROM fact_order_line WHERE order_item_id IN (SELECT id FROM tmp_deleted_items)
  OR order_id IN (SELECT id FROM tmp_deleted_orders);
INSERT INTO fact_order_line AS f SELECT * FROM tmp_fact_order_line
  ON CONFLICT (order_item_id) DO UPDATE SET order_id = excluded.order_id,
    product_id = excluded.product_id, customer_id = excluded.customer_id,
    customer_key = excluded.customer_key, date_key = excluded.date_key,
    ordered_at = excluded.ordered_at, order_status = excluded.order_status,
    quantity = excluded.quantity, unit_price = excluded.unit_price,
    line_amount = excluded.line_amount
  WHERE (f.order_id, f.product_id, f.customer_id, f.customer_key, f.date_key, f.ordered_at,
         f.order_status, f.quantity, f.unit_price, f.line_amount)
    IS DISTINCT FROM (excluded.order_id, excluded.product_id, excluded.customer_id,
                      excluded.customer_key, excluded.date_key, excluded.ordered_at,
                      excluded.order_status, excluded.quantity, excluded.unit_price,
                      excluded.line_amount);
"""

_STAGING = {
    "dim_customer": "LIKE dim_customer",
    "dim_product": "LIKE dim_product",
    "deleted_products": "id bigint",
    "dim_date": "LIKE dim_date",
    "state_orders": "LIKE state_orders",
    "deleted_orders": "id bigint",
    "fact_order_line": "LIKE fact_order_line",
    "deleted_items": "id bigint",
}


@dataclass(frozen=True)
class LoadResult:
    run_id: int
    rows: dict[str, int]
    report: Path
    seconds: float
    # Seconds per step of the load, in order (stage, merge dimensions, validate, ...).
    phases: dict[str, float] = field(default_factory=dict)


class Phases:
    """Wall-clock seconds of consecutive named steps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._mark, 3)
        self._mark = now


def load(
    conn: psycopg.Connection[Any],
    batch: BatchSettings,
    m: Materialized,
    window: Window,
    end: io.Offsets,
    started_at: datetime,
) -> LoadResult:
    """Stage, validate, merge and store the offsets in one transaction: all or nothing."""
    began = time.perf_counter()
    phases = Phases()
    tolerance = batch.row_count_tolerance
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('headwater.batch.warehouse'))")
        rows: dict[str, int] = {}
        for name, columns in _STAGING.items():
            cur.execute(f"CREATE TEMP TABLE tmp_{name} ({columns}) ON COMMIT DROP")
            rows[name] = io.copy_arrow(cur, f"tmp_{name}", m.tables[name])
            # Temporary tables are never auto-analyzed; the merges' joins need real row counts.
            cur.execute(f"ANALYZE tmp_{name}")
        phases.done("stage (COPY into temporary tables)")
        cur.execute(_MERGE_DIMS)
        phases.done("merge dimensions")
        frames = _frames(conn, m)
        suites_by_table = {
            "dim_customer": suites.dim_customer_suite(),
            "dim_product": suites.dim_product_suite(_bounds(m.source_counts["dim_product"], 0.0)),
            "dim_date": suites.dim_date_suite(),
            "fact_order_line": suites.fact_order_line_suite(
                _bounds(m.source_counts["fact_order_line"], tolerance)
            ),
        }
        kind = "backfill" if window.backfill else "incremental"
        # The suites check the staged frames in this process while PostgreSQL merges the facts
        # inside the still-open transaction: a failed suite rolls the merge back, so nothing
        # of this run is ever visible, and the load takes max(validate, merge), not the sum.
        with ThreadPoolExecutor(1, thread_name_prefix="validate") as pool:
            validating = pool.submit(runner.validate, frames, suites_by_table)
            if window.backfill:
                low, high = window.bounds()
                cur.execute(
                    "DELETE FROM fact_order_line WHERE date_key BETWEEN %s AND %s", (low, high)
                )
            cur.execute(_MERGE_FACTS)
            phases.done("merge facts (validating meanwhile)")
            verdict = validating.result()
        report = runner.write_report(verdict, batch.reports_dir, f"{JOB} {kind}")
        phases.done("validate (Great Expectations), after the merge")
        if not verdict.success:
            raise QualityFailed(report)
        loaded = {k: v for k, v in rows.items() if not k.startswith("deleted_")}
        offsets = {} if window.backfill else end
        run_id = io.record_run(
            conn,
            job=JOB,
            kind=kind,
            started_at=started_at,
            status="succeeded",
            window=(window.date_from, window.date_to),
            rows_loaded=loaded,
            offsets=offsets,
            quality="passed",
            report=report,
        )
        if offsets:
            io.save_offsets(conn, JOB, offsets, run_id)
        phases.done("record the run and offsets")
    phases.done("commit")
    log.info("load took %s", ", ".join(f"{k} {v:.1f}s" for k, v in phases.seconds.items()))
    return LoadResult(run_id, loaded, report, time.perf_counter() - began, phases.seconds)


def record_failure(
    settings: Settings,
    job: str,
    kind: str,
    window: Window,
    started_at: datetime,
    error: BaseException,
) -> None:
    """Note a failed run in its own transaction; the load itself left nothing behind."""
    report = error.report if isinstance(error, QualityFailed) else None
    try:
        with io.connect(settings) as conn, conn.transaction():
            io.record_run(
                conn,
                job=job,
                kind=kind,
                started_at=started_at,
                status="failed",
                window=(window.date_from, window.date_to),
                rows_loaded={},
                offsets={},
                quality="failed" if report else "not run",
                report=report,
                error=str(error)[:2000],
            )
    except Exception:  # the original failure matters more than its bookkeeping
        log.exception("could not record the failed run")


def run(
    settings: Settings, batch: BatchSettings, window: Window, spark: SparkSession | None = None
) -> LoadResult:
    """One run of the job; raises on failure after recording it."""
    from batch.spark import build_session

    started_at = datetime.now(UTC)
    io.ensure_database(settings)
    session = spark or build_session(settings, batch, f"headwater-{JOB}")
    ex: Extracted | None = None
    try:
        with io.connect(settings) as conn:
            io.ensure_schema(conn)
            ex = extract(session, settings, batch, conn, window)
            mat = materialize(transform(ex, window), window)
            return load(conn, batch, mat, window, ex.end, started_at)
    except BaseException as exc:
        kind = "backfill" if window.backfill else "incremental"
        record_failure(settings, JOB, kind, window, started_at, exc)
        raise
    finally:
        for df in ex.changes.values() if ex else ():
            df.unpersist()


def job_main(
    job: str,
    run_job: Callable[[Settings, BatchSettings, Window], LoadResult],
    doc: str | None,
    argv: Sequence[str] | None,
) -> int:
    """The command line of a batch job: `python -m batch.jobs.JOB [--from D] [--to D]`."""
    parser = argparse.ArgumentParser(prog=f"batch.jobs.{job}", description=doc)
    parser.add_argument("--from", dest="date_from", type=date.fromisoformat)
    parser.add_argument("--to", dest="date_to", type=date.fromisoformat)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result = run_job(Settings.load(), BatchSettings(), Window(args.date_from, args.date_to))
    except QualityFailed as exc:
        print(f"{job}: data quality FAILED, nothing loaded; report: {exc.report}", file=sys.stderr)
        return 2
    print(f"{job}: run {result.run_id} loaded {result.rows}; report: {result.report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
